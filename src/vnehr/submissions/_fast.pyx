# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The intake's hot loop in C: a table's rows read from the libxml2 tree that ``xmlio.parse``
built (never parsing anything itself), and each field's format checked on its UTF-8 bytes on
the way.

The Python code stays the one source of truth (D115). ``read_rows`` answers only for the plain
case (each field an element holding text or CDATA, or nothing); on anything else it answers
None and ``xmlio.read_table`` reads the document in Python. Its verdict per row is
conservative: "the format checks of ``rules._check_fields`` find nothing here, save that these
required fields are blank or absent", or None ("cannot tell": the Python checks run).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_Append
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.limits cimport LLONG_MIN
from libc.string cimport memset, strcmp, strlen

cimport lxml.includes.etreepublic as cetree
from lxml.includes cimport tree

cetree.import_lxml__etree()

cdef extern from *:
    """
    #ifndef VNEHR_FAST_SOURCE
    #define VNEHR_FAST_SOURCE ""
    #endif
    """
    const char* VNEHR_FAST_SOURCE

#: The SHA-256 of the ``_fast.pyx`` this module was built from (``setup.py`` passes it):
#: ``rules`` does not use a module built from another source (D123).
SOURCE_SHA256 = VNEHR_FAST_SOURCE.decode("ascii")

#: The kinds of value of ``rules.field_checks`` (named there by ``rules.KINDS``).
KINDS = {"plain": 0, "moment": 1, "day": 2, "number": 3, "birth": 4, "day_or_moment": 5}

cdef enum:
    MAX_FIELDS = 256
    SLOTS = 1024  # the name table: a power of two, at least 4 x MAX_FIELDS

cdef int _DAYS[13]
_DAYS[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


cdef inline unsigned int _hash(const unsigned char* s) noexcept nogil:
    cdef unsigned int h = 2166136261u
    while s[0]:
        h = (h ^ s[0]) * 16777619u
        s += 1
    return h


cdef class Plan:
    """A table's fields as the compiled reader needs them: names and, per field, the checks of
    ``rules._field_checks`` (required, longest, several values, kind, decimal places)."""

    cdef readonly tuple names  # the spec's field names (str), in the spec's order
    cdef tuple _encoded  # the same as UTF-8 bytes, kept alive for the C strings
    cdef tuple _ignored  # element names neither read nor reported (CHUKYDONVI)
    cdef int count
    cdef const char* c_names[MAX_FIELDS]
    cdef bint required[MAX_FIELDS]
    cdef int longest[MAX_FIELDS]
    cdef bint multi[MAX_FIELDS]
    cdef int kind[MAX_FIELDS]
    cdef int places[MAX_FIELDS]
    cdef int slots[SLOTS]  # field index + 1, 0 for free

    def __cinit__(self, checks, ignored=()):
        cdef int i, slot
        cdef unsigned int h
        checks = tuple(checks)
        if len(checks) > MAX_FIELDS:
            raise ValueError("too many fields for the compiled reader")
        self.count = len(checks)
        self.names = tuple(c[0] for c in checks)
        self._encoded = tuple(n.encode("utf-8") for n in self.names)
        self._ignored = tuple(n.encode("utf-8") for n in ignored)
        memset(self.slots, 0, sizeof(self.slots))
        for i, (name, required, longest, multi, kind, places) in enumerate(checks):
            self.c_names[i] = PyBytes_AS_STRING(self._encoded[i])
            self.required[i] = bool(required)
            self.longest[i] = -1 if longest is None else longest
            self.multi[i] = bool(multi)
            if not 0 <= kind <= 5:
                raise ValueError(f"unknown kind {kind}")
            self.kind[i] = kind
            self.places[i] = -1 if places is None else places
            h = _hash(<const unsigned char*>self.c_names[i])
            slot = h & (SLOTS - 1)
            while self.slots[slot]:
                slot = (slot + 1) & (SLOTS - 1)
            self.slots[slot] = i + 1

    cdef inline int find(self, const char* name) noexcept:
        cdef int slot = _hash(<const unsigned char*>name) & (SLOTS - 1)
        cdef int found
        while True:
            found = self.slots[slot]
            if found == 0:
                return -1
            if strcmp(self.c_names[found - 1], name) == 0:
                return found - 1
            slot = (slot + 1) & (SLOTS - 1)

    cdef bint ignored(self, const char* name):
        cdef bytes other
        for other in self._ignored:
            if strcmp(PyBytes_AS_STRING(other), name) == 0:
                return True
        return False


# ------------------------------------------------------------------ the checks, on bytes

# verdicts of one value
cdef enum:
    CLEAN = 0
    BLANK = 1
    UNSURE = 2  # an issue, or cannot tell: the Python checks decide


cdef inline bint _space(unsigned char c) noexcept nogil:
    # str.isspace() of an ASCII character (and str.strip()'s default set)
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


cdef inline bint _digits(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if not (48 <= s[i] <= 57):
            return False
    return True


cdef inline int _num(const unsigned char* s, int n) noexcept nogil:
    cdef int v = 0, i
    for i in range(n):
        v = v * 10 + (s[i] - 48)
    return v


cdef inline int _month_days(int year, int month) noexcept nogil:
    if month == 2 and (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return 29
    return _DAYS[month]


cdef inline bint _is_day(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """``kit.clock.parse_day`` is not None (8 ASCII digits, a real date from 1900-01-01 to
    2099-12-31, ``kit.clock.EARLIEST_DAY`` to ``LATEST_DAY``; outside, SUB-0119 from Python)."""
    cdef int year, month, day
    if n != 8 or not _digits(s, 8):
        return False
    year, month, day = _num(s, 4), _num(s + 4, 2), _num(s + 6, 2)
    return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= _month_days(year, month)


cdef inline bint _is_moment(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """``kit.clock.parse_moment`` is not None (12 ASCII digits, a real date and time, its day
    as ``_is_day``)."""
    if n != 12 or not _is_day(s, 8) or not _digits(s + 8, 4):
        return False
    return _num(s + 8, 2) <= 23 and _num(s + 10, 2) <= 59


cdef inline bint _is_birth(const unsigned char* s, Py_ssize_t n, bint short) noexcept nogil:
    """``rules.birth_of`` is not None (with "0000" appended when ``short``)."""
    cdef int year, month, day
    if n != (8 if short else 12) or not _digits(s, n):
        return False
    year, month, day = _num(s, 4), _num(s + 4, 2), _num(s + 6, 2)
    if year < 1850 or year > 2099 or (month == 0 and day != 0):
        return False
    if not short and (_num(s + 8, 2) > 23 or _num(s + 10, 2) > 59):
        return False
    if month == 0:
        return True
    return month <= 12 and (day if day > 1 else 1) <= _month_days(year, month)


cdef inline bint _is_number(const unsigned char* s, Py_ssize_t n, int places) noexcept nogil:
    """``rules._check_fields`` finds nothing in this number (``is_number`` of the stripped
    text and, with ``places``, at most that many decimals besides trailing zeros)."""
    cdef Py_ssize_t i = 0, start, last
    while n > 0 and _space(s[n - 1]):
        n -= 1
    while i < n and _space(s[i]):
        i += 1
    if i < n and s[i] == 45:  # "-"
        i += 1
    start = i
    while i < n and 48 <= s[i] <= 57:
        i += 1
    if i == n:
        return i > start
    if s[i] != 46:  # "."
        return False
    i += 1
    if i == n:
        return False  # "1." and "." are not numbers
    start = i
    last = i - 1  # the last decimal that is not a zero
    while i < n and 48 <= s[i] <= 57:
        if s[i] != 48:
            last = i
        i += 1
    if i != n:
        return False
    return places < 0 or last - start + 1 <= places


cdef inline bint _part_clean(const unsigned char* s, Py_ssize_t n, int kind, int longest,
                             int places) noexcept nogil:
    """One value (or one part of several) is well-formed for its kind. ASCII only: every
    kind but plain text is ASCII, and a non-ASCII part is left to Python."""
    cdef Py_ssize_t i
    for i in range(n):
        if s[i] >= 128:
            return False
    if kind == 1:
        return _is_moment(s, n)
    if kind == 2:
        return _is_day(s, n)
    if kind == 3:
        return _is_number(s, n, places)
    if kind == 4:
        return _is_birth(s, n, longest == 8)
    if kind == 5:
        return _is_day(s, n) if n == 8 else _is_moment(s, n)
    return True


cdef inline int _verdict(Plan plan, int field, const unsigned char* s, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i, chars = 0, begin
    cdef bint ascii_only = True, blank = True
    cdef unsigned char c
    cdef int kind = plan.kind[field]
    for i in range(n):
        c = s[i]
        if c < 128:
            chars += 1
            if blank and not _space(c):
                blank = False
        else:
            ascii_only = False
            if (c & 0xC0) != 0x80:
                chars += 1
    if blank:
        # all ASCII whitespace is blank; a non-ASCII character may be whitespace too
        # (str.isspace: U+00A0, U+3000...): cannot tell
        return BLANK if ascii_only else UNSURE
    if plan.longest[field] >= 0 and chars > plan.longest[field]:
        return UNSURE
    if kind == 0:
        return CLEAN
    if not ascii_only:
        return UNSURE
    if not plan.multi[field]:
        return CLEAN if _part_clean(s, n, kind, plan.longest[field], plan.places[field]) else UNSURE
    begin = 0
    for i in range(n + 1):
        if i == n or s[i] == 59:  # ";"
            if not _part_clean(s + begin, i - begin, kind, plan.longest[field],
                               plan.places[field]):
                return UNSURE
            begin = i + 1
    return CLEAN


# ------------------------------------------------------------------ the reader

cdef inline bint _texts_only(tree.xmlNode* c) noexcept nogil:
    while c is not NULL:
        if c.type != tree.XML_TEXT_NODE and c.type != tree.XML_CDATA_SECTION_NODE:
            return False
        c = c.next
    return True


cdef int _read_row(Plan plan, tree.xmlNode* row_node, Py_ssize_t index, list rows,
                   list unknown, list duplicates, list checked) except -1:
    """One row into ``rows`` (field -> exact text), its unknown and repeated fields, and its
    verdict into ``checked``; False when the row is not plain (the caller gives up)."""
    cdef tree.xmlNode* child = row_node.children
    cdef tree.xmlNode* inner
    cdef int field, verdict, i
    cdef bint sure = True
    cdef bytes joined
    cdef const unsigned char* text
    cdef Py_ssize_t size
    cdef char seen[MAX_FIELDS]
    cdef list missing = None
    cdef dict row = {}
    memset(seen, 0, plan.count)
    while child is not NULL:
        if child.type == tree.XML_ELEMENT_NODE:
            field = plan.find(<const char*>child.name)
            if field < 0:
                if not plan.ignored(<const char*>child.name):
                    PyList_Append(
                        unknown,
                        (index, PyUnicode_DecodeUTF8(<const char*>child.name,
                                                     strlen(<const char*>child.name), NULL)),
                    )
                child = child.next
                continue
            inner = child.children
            if inner is NULL:
                text = <const unsigned char*>b""
                size = 0
            elif inner.next is NULL and (inner.type == tree.XML_TEXT_NODE
                                         or inner.type == tree.XML_CDATA_SECTION_NODE):
                text = <const unsigned char*>inner.content
                size = strlen(<const char*>inner.content)
            elif _texts_only(inner):
                # text and CDATA side by side: lxml's .text joins them
                joined = b""
                while inner is not NULL:
                    joined += <bytes>inner.content
                    inner = inner.next
                text = <const unsigned char*>PyBytes_AS_STRING(joined)
                size = PyBytes_GET_SIZE(joined)
            else:
                return 0  # an element, comment or instruction inside a field
            name = plan.names[field]
            if seen[field]:
                PyList_Append(duplicates, ("SUB-0106", index, name))
                sure = False  # (the last value is kept; its verdict is not worth the care)
            seen[field] = 1
            PyDict_SetItem(row, name, PyUnicode_DecodeUTF8(<const char*>text, size, NULL))
            if sure:
                verdict = _verdict(plan, field, text, size)
                if verdict == UNSURE:
                    sure = False
                elif verdict == BLANK and plan.required[field]:
                    if missing is None:
                        missing = []
                    missing.append(name)
        elif child.type != tree.XML_TEXT_NODE and child.type != tree.XML_CDATA_SECTION_NODE:
            return 0  # a comment, instruction or entity among the fields
        child = child.next
    PyList_Append(rows, row)
    if not sure:
        PyList_Append(checked, None)
        return 1
    for i in range(plan.count):
        if plan.required[i] and not seen[i]:
            if missing is None:
                missing = []
            missing.append(plan.names[i])
    PyList_Append(checked, () if missing is None else tuple(missing))
    return 1


def read_rows(cetree._Element root not None, bytes list_name, bytes row_name,
              Plan plan not None, bytes beside=None):
    """The rows of an inner table as ``xmlio.read_table`` reads them, ``(rows, unknown,
    duplicates, checked)``: under ``root``, its one child the list element named
    ``list_name`` (and any elements named ``beside``, not looked into: a check-in's
    signature), each child of which a row named ``row_name``; or, when they are None,
    ``root`` itself the one row. None when the document is not that plain: anything else
    beside the list or the rows but text, anything but text inside a field (the Python reader
    then reads it, and says what it finds)."""
    cdef list rows = [], unknown = [], duplicates = [], checked = []
    cdef tree.xmlNode* node
    cdef tree.xmlNode* container = NULL
    cdef Py_ssize_t index = 0
    if list_name is None:
        if not _read_row(plan, root._c_node, 0, rows, unknown, duplicates, checked):
            return None
        return rows, unknown, duplicates, checked
    node = root._c_node.children
    while node is not NULL:
        if node.type == tree.XML_ELEMENT_NODE and container is NULL and strcmp(
                <const char*>node.name, PyBytes_AS_STRING(list_name)) == 0:
            container = node
        elif node.type == tree.XML_ELEMENT_NODE and beside is not None and strcmp(
                <const char*>node.name, PyBytes_AS_STRING(beside)) == 0:
            pass  # (read by the signature check)
        elif node.type != tree.XML_TEXT_NODE and node.type != tree.XML_CDATA_SECTION_NODE:
            return None  # a second list, rows beside it, a comment...
        node = node.next
    if container is NULL:
        return None
    node = container.children
    while node is not NULL:
        if node.type == tree.XML_ELEMENT_NODE:
            if strcmp(<const char*>node.name, PyBytes_AS_STRING(row_name)) != 0:
                return None
            if not _read_row(plan, node, index, rows, unknown, duplicates, checked):
                return None
            index += 1
        elif node.type != tree.XML_TEXT_NODE and node.type != tree.XML_CDATA_SECTION_NODE:
            return None
        node = node.next
    return rows, unknown, duplicates, checked


cdef inline tree.xmlNode* _first_element(tree.xmlNode* node) noexcept nogil:
    while node is not NULL and node.type != tree.XML_ELEMENT_NODE:
        node = node.next
    return node


def deeper(cetree._Element root not None, int depth):
    """Whether some element lies deeper than ``depth`` below the document (``root`` at 1):
    ``xmlio._too_deep(depth)`` without XPath."""
    cdef tree.xmlNode* node = root._c_node
    cdef tree.xmlNode* child
    cdef tree.xmlNode* sibling
    cdef int level = 1
    while True:
        if level > depth:
            return True
        child = _first_element(node.children)
        if child is not NULL:
            node, level = child, level + 1
            continue
        while node is not root._c_node:
            sibling = _first_element(node.next)
            if sibling is not NULL:
                node = sibling
                break
            node, level = node.parent, level - 1
        else:
            return False




# ------------------------------------------------------------------ money (D120)

cdef extern from *:
    # GCC and Clang: the product or sum, and whether it did not fit
    bint _mul_overflow "__builtin_mul_overflow"(long long a, long long b,
                                                 long long* out) noexcept nogil
    bint _add_overflow "__builtin_add_overflow"(long long a, long long b,
                                                 long long* out) noexcept nogil

cdef long long _POW10[19]
_POW10[0] = 1
for _i in range(1, 19):
    _POW10[_i] = _POW10[_i - 1] * 10

cdef enum:
    NUMBER_NONE = -1  # empty: ``rules.parse_number`` gives None
    NUMBER_UNSURE = -2  # anything else unusual: the Decimal code decides
    MAX_PLACES = 6  # decimal places kept (trailing zeros aside)


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    const void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)


cdef int _number(object value, long long* mantissa) noexcept:
    """``value`` (str or None) as ``rules.parse_number`` reads it, when plain: the number is
    ``mantissa`` / 10 ** (the answer), trailing zeros of the fraction dropped; or
    NUMBER_NONE (empty or absent) or NUMBER_UNSURE (spaces around it, more than 18 digits or
    6 places, more than 20 characters, anything but ASCII, not a number: Python reads it)."""
    cdef const unsigned char* s
    cdef Py_ssize_t n, i = 0
    cdef unsigned char c
    cdef long long m = 0
    cdef int places = 0, whole = 0
    cdef bint negative = False
    if value is None:
        return NUMBER_NONE
    if type(value) is not str or not PyUnicode_IS_ASCII(value):
        return NUMBER_UNSURE
    n = PyUnicode_GET_LENGTH(value)
    if n == 0:
        return NUMBER_NONE
    if n > 20:
        return NUMBER_UNSURE
    s = <const unsigned char*>PyUnicode_DATA(value)
    if s[0] == 45:  # "-"
        negative, i = True, 1
    while i < n:
        c = s[i]
        if not (48 <= c <= 57):
            break
        if whole == 18:
            return NUMBER_UNSURE  # (at most 18 digits fit, leading zeros counted)
        m = m * 10 + (c - 48)
        i += 1
        whole += 1
    if i < n:
        if s[i] != 46:  # "."
            return NUMBER_UNSURE
        i += 1
        if i == n:
            return NUMBER_UNSURE  # "2.": not a number to parse_number
        while i < n:
            c = s[i]
            if not (48 <= c <= 57) or whole + places == 18:
                return NUMBER_UNSURE
            m = m * 10 + (c - 48)
            i += 1
            places += 1
    elif whole == 0:
        return NUMBER_UNSURE  # "-"
    while places > 0 and m % 10 == 0:
        m //= 10
        places -= 1
    if places > MAX_PLACES:
        return NUMBER_UNSURE
    mantissa[0] = -m if negative else m
    return places


cdef inline bint _cents(long long n, int places, bint half_even, long long* out) noexcept:
    """``n`` / 10 ** ``places`` rounded to 0.01, half up (away from zero) or half to even, as
    Decimal.quantize; False when it does not fit."""
    cdef long long size, whole, rest
    cdef bint negative = n < 0
    if places <= 2:
        return not _mul_overflow(n, _POW10[2 - places], out)
    if places - 2 > 18:
        return False
    size = _POW10[places - 2]
    if negative:
        if n == LLONG_MIN:
            return False
        n = -n
    whole, rest = n // size, n % size
    if 2 * rest > size or (2 * rest == size and (not half_even or whole % 2 == 1)):
        whole += 1
    out[0] = -whole if negative else whole
    return True


cdef inline bint _scaled(long long m, int places, long long* out) noexcept:
    """``m`` / 10 ** ``places`` in millionths; False when it does not fit."""
    return not _mul_overflow(m, _POW10[MAX_PLACES - places], out)


def money_clean(tables, dict summary not None):
    """True when ``rules.check_money_decimal`` finds nothing in this visit (line amounts,
    their sum in T_TONGCHI_BV, T_BHTT = T_TONGCHI_BH - T_BNCCT), worked out on integers
    exactly; False: something is wrong or unusual, or cannot tell (the Decimal code decides).

    Exact: every number is read as plain digits (at most 18, at most 6 places), so a value
    is a 64-bit integer over a power of ten; every product and sum is checked for overflow,
    so each has at most 19 digits, which Decimal (28 digits) computes exactly as well; and
    the rounding to 0.01 is the Decimal code's (half up for a line, half to even for the
    totals)."""
    cdef long long total = 0, amount, quantity, price, share, product, left, right, scaled
    cdef int p_amount, p_quantity, p_price, p_share, places
    cdef bint with_share
    cdef dict row
    for name, price_field, with_share in (("XML2", "DON_GIA", False),
                                          ("XML3", "DON_GIA_BV", True)):
        rows = tables.get(name)
        if rows is None:
            continue
        if type(rows) is not list:
            return False
        for item in <list>rows:
            if type(item) is not dict:
                return False
            row = <dict>item
            p_amount = _number(row.get("THANH_TIEN_BV") or "0", &amount)
            if p_amount < 0 or not _scaled(amount, p_amount, &scaled):
                return False
            if _add_overflow(total, scaled, &total):
                return False
            p_quantity = _number(row.get("SO_LUONG"), &quantity)
            p_price = _number(row.get(price_field), &price)
            if p_quantity == NUMBER_UNSURE or p_price == NUMBER_UNSURE:
                return False
            if p_quantity == NUMBER_NONE or p_price == NUMBER_NONE:
                continue  # (not checked by the Decimal code either)
            if _mul_overflow(quantity, price, &product):
                return False
            places = p_quantity + p_price
            if with_share:
                p_share = _number(row.get("TYLE_TT_DV"), &share)
                if p_share == NUMBER_UNSURE:
                    return False
                if p_share != NUMBER_NONE:
                    if _mul_overflow(product, share, &product):
                        return False
                    places += p_share + 2  # x share / 100
            if not _cents(amount, p_amount, False, &left):
                return False
            if not _cents(product, places, False, &right) or left != right:
                return False
    p_amount = _number(summary.get("T_TONGCHI_BV"), &amount)
    if p_amount == NUMBER_UNSURE:
        return False
    if p_amount != NUMBER_NONE:
        if not _cents(amount, p_amount, True, &left) or not _cents(total, MAX_PLACES, True,
                                                                   &right):
            return False
        if left != right:
            return False
    p_amount = _number(summary.get("T_TONGCHI_BH"), &amount)
    p_quantity = _number(summary.get("T_BNCCT"), &quantity)
    p_price = _number(summary.get("T_BHTT"), &price)
    if NUMBER_UNSURE in (p_amount, p_quantity, p_price):
        return False
    if NUMBER_NONE in (p_amount, p_quantity, p_price):
        return True
    if not _scaled(amount, p_amount, &amount) or not _scaled(quantity, p_quantity, &quantity):
        return False
    if _add_overflow(amount, -quantity, &product):
        return False
    if not _cents(product, MAX_PLACES, True, &left) or not _cents(price, p_price, True, &right):
        return False
    return left == right
