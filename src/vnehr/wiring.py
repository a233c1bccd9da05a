"""What the contexts are told of each other from above: a lower context (the health book,
identity, records, papers) calls back into a higher one (FHIR, sharing, the inbox) only
through a hook the composition root hands it. The app, and every command that reads or
writes the database, wire them alike: a correction made by `vnehr import` takes its notices
out of the first holder's inbox as one sent to the API does (D183)."""

from __future__ import annotations

from vnehr import exchange, fhir, first_sign_in, healthbook, identity, papers, records, sharing


def wire(public_url: str) -> None:
    """Hand every hook down (idempotent: each has a name, and a second call replaces it).
    ``public_url``: the service's address, which FHIR references in what the book reads."""
    # allergies come only as FHIR AllergyIntolerance (D29), kept by fhir above the health book
    healthbook.read_allergies_with(fhir.allergy_reader(public_url))
    # the access log tells each emergency access's review, which sharing keeps above the book
    healthbook.read_emergency_reviews_with(sharing.emergency_reviews)
    # what was filed to a person while pending is compared at their first sign-in (D167): kept
    # by contexts above identity
    identity.on_first_confirmation("held", first_sign_in.recheck)
    # a paper a correction gives another holder leaves the first one's inbox too (kept above
    # papers)
    papers.on_leaving_book(
        "notices", lambda session, person_id, gone: exchange.forget(session, person_id, (), gone)
    )
    # so does a visit's notice when a correction says the visit is someone else's (D171)
    records.on_leaving_book(
        "notices", lambda session, person_id, gone: exchange.forget(session, person_id, gone, ())
    )
