// Loads graphsec's $metadata (CSDL XML) with the OASIS OData TC's own tools: odata-csdl turns it
// into CSDL JSON, odata-openapi turns that into OpenAPI. Any error, or any message either tool
// reports (their warnings), fails the check.
//   node tools/check-metadata.cjs docs/api/metadata.xml
"use strict";
const fs = require("node:fs");
const { xml2json } = require("odata-csdl");
const { csdl2openapi } = require("odata-openapi");

const source = process.argv[2];
if (!source) {
  console.error("usage: node check-metadata.cjs METADATA.xml");
  process.exit(2);
}
const problems = [];
let csdl;
try {
  const messages = [];
  csdl = xml2json(fs.readFileSync(source), { messages });
  for (const m of messages) problems.push(`odata-csdl: ${m.message}`);
} catch (e) {
  problems.push(`odata-csdl: ${e.message}`);
}
if (csdl) {
  for (const version of ["3.0.2", "3.1.0"]) {
    try {
      const messages = [];
      const openapi = csdl2openapi(csdl, { messages, openapiVersion: version });
      for (const m of messages) problems.push(`odata-openapi ${version}: ${JSON.stringify(m)}`);
      if (!openapi.paths || Object.keys(openapi.paths).length === 0)
        problems.push(`odata-openapi ${version}: no paths generated`);
    } catch (e) {
      problems.push(`odata-openapi ${version}: ${e.message}`);
    }
  }
}
if (problems.length > 0) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log(`${source}: odata-csdl and odata-openapi load it without errors or warnings`);
