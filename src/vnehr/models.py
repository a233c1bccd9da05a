"""Every context's tables, imported in one place so the one metadata knows them all
(migrations, schema checks). A composition root: nothing imports it but those."""

import vnehr.audit.chain
import vnehr.audit.log
import vnehr.catalogs.models
import vnehr.exchange.models
import vnehr.facilities.models
import vnehr.fhir.models
import vnehr.identity.models
import vnehr.kit.auth
import vnehr.kit.outbox
import vnehr.papers.models
import vnehr.records.models
import vnehr.reporting.models
import vnehr.sharing.models
import vnehr.submissions.models  # noqa: F401
from vnehr.kit.db import Base

metadata = Base.metadata
