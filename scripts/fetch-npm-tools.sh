#!/usr/bin/env bash
# Test tools from npm, once, into .cache: the official HL7 FHIR R4 examples and definitions
# (hl7.fhir.r4.examples@4.0.1, CC0; tests read the examples, scripts/gen_fhir_spec.py the
# definitions) and an independent SMART Health Cards reader (@pathcheck/shc-sdk, MIT) that
# tests use to verify the papers' QR codes against a live server.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "npm is needed for the test tools (apt install npm)" >&2; exit 1; }
if [ ! -f .cache/fhir/node_modules/hl7.fhir.r4.examples/package.json ]; then
  mkdir -p .cache/fhir
  npm install --silent --no-audit --no-fund --prefix .cache/fhir hl7.fhir.r4.examples@4.0.1
fi
if [ ! -f .cache/shc/node_modules/@pathcheck/shc-sdk/package.json ]; then
  mkdir -p .cache/shc
  npm install --silent --no-audit --no-fund --prefix .cache/shc @pathcheck/shc-sdk@0.0.8
fi
