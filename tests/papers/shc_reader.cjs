// Verify a SMART Health Card QR text with PathCheck's SHC SDK (not written here).
// Usage: node shc_reader.cjs <shc:/...> <issuer> <jwks.json text>
// Prints the verified credential as JSON, or "null" when the SDK refuses the card.
const shc = require("@pathcheck/shc-sdk");

const [uri, issuer, jwks] = process.argv.slice(2);
console.log = console.error; // the SDK logs its progress on stdout
shc.unpackAndVerify(uri, { [issuer]: JSON.parse(jwks) }).then((result) => {
  process.stdout.write(JSON.stringify(result ? result.credential : null));
});
