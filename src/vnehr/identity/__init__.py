"""Identity: persons keyed by the personal ID, health accounts, representatives, insurance cards,
role grants, and VNeID sign-in (OpenID Connect). Other contexts use this surface only."""

from vnehr.identity.accounts_errors import (
    LevelTooLow,
    ProviderUnavailable,
    SignInFailed,
    SignInRejected,
    UnknownPerson,
)
from vnehr.identity.api import router
from vnehr.identity.numbers import (
    InsuranceCard,
    PersonalId,
    check_insurance_card,
    check_personal_id,
    check_social_insurance_number,
    classify_document_number,
)
from vnehr.identity.oidc import OidcClient, PendingLogin
from vnehr.identity.service import (
    Holder,
    account,
    add_representative,
    book_holders,
    bootstrap_grant,
    close_account,
    grants_for,
    match_patient,
    may_act_for,
    open_account,
    person_id_of,
    person_id_query,
    persons,
    profile,
    sign_in,
)

__all__ = [
    "Holder",
    "InsuranceCard",
    "LevelTooLow",
    "OidcClient",
    "PendingLogin",
    "PersonalId",
    "ProviderUnavailable",
    "SignInFailed",
    "SignInRejected",
    "UnknownPerson",
    "account",
    "add_representative",
    "book_holders",
    "bootstrap_grant",
    "check_insurance_card",
    "check_personal_id",
    "check_social_insurance_number",
    "classify_document_number",
    "close_account",
    "grants_for",
    "match_patient",
    "may_act_for",
    "open_account",
    "person_id_of",
    "person_id_query",
    "persons",
    "profile",
    "router",
    "sign_in",
]
