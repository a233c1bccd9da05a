"""HL7 FHIR R4 (4.0.1) at /fhir/R4."""
