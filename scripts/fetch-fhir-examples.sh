#!/usr/bin/env bash
# The official HL7 FHIR R4 examples and definitions (npm hl7.fhir.r4.examples@4.0.1, CC0) into
# .cache/fhir, once. Tests read the examples; scripts/gen_fhir_spec.py reads the definitions.
set -euo pipefail
cd "$(dirname "$0")/.."
target=.cache/fhir/node_modules/hl7.fhir.r4.examples
if [ -f "$target/package.json" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "npm is needed for the FHIR examples (apt install npm)" >&2; exit 1; }
mkdir -p .cache/fhir
npm install --silent --no-audit --no-fund --prefix .cache/fhir hl7.fhir.r4.examples@4.0.1
