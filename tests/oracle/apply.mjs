// apply.mjs replays streamed events with JavaScript appliers written apart from the Go
// code, as a browser client would: fast-json-patch for RFC 6902 patches, json-merge-patch
// for RFC 7386 merge patches, and replacement for snapshots.
//
// Usage: node tests/oracle/apply.mjs <cases.json>
//
// The file holds an array of cases {name, a, events: [{event, data, format}], b}, where
// a and b are JSON texts and data is the text of an event's data field. Each case starts
// from JSON.parse(a), applies its events in order, and must end deep-equal to
// JSON.parse(b). Failures are printed one JSON object a line; the last line is a summary
// {"cases": n, "failures": m}. The exit status is 1 when any case fails.
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import jsonpatch from 'fast-json-patch';
import mergePatch from 'json-merge-patch';

const failuresShown = 50;

// applyEvent returns the document after one event.
function applyEvent(doc, ev) {
  const data = JSON.parse(ev.data);
  if (ev.event === 'snapshot') {
    return data;
  }
  if (ev.event === 'patch' && ev.format === 'json_patch') {
    if (!Array.isArray(data)) throw new Error('a json_patch patch that is not an RFC 6902 array');
    // Validate each operation and patch the document in place, as a client holding its
    // state does: with mutateDocument false fast-json-patch first clones the document
    // through JSON.stringify, which turns 1e400 (Infinity) into null and -0 into 0.
    return jsonpatch.applyPatch(doc, data, true, true).newDocument;
  }
  if (ev.event === 'patch' && ev.format === 'merge_patch') {
    // A merge_patch patch event is always an object: json-merge-patch, as RFC 7386 says,
    // would take an array or a scalar as the new document, where other clients do not.
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      throw new Error('a merge_patch patch that is not an RFC 7386 object');
    }
    return mergePatch.apply(doc, data);
  }
  throw new Error(`unknown event ${ev.event} in format ${ev.format}`);
}

// check returns null when the case passes, or what went wrong.
function check(c) {
  let doc = JSON.parse(c.a);
  for (const [i, ev] of c.events.entries()) {
    try {
      doc = applyEvent(doc, ev);
    } catch (err) {
      return { name: c.name, event: i, error: String(err), data: ev.data };
    }
  }
  const want = JSON.parse(c.b);
  if (!isDeepStrictEqual(doc, want)) {
    return { name: c.name, got: JSON.stringify(doc), want: c.b, events: c.events };
  }
  return null;
}

function main(path) {
  const cases = JSON.parse(readFileSync(path, 'utf8'));
  let failures = 0;
  for (const c of cases) {
    const failure = check(c);
    if (failure === null) {
      continue;
    }
    failures++;
    if (failures <= failuresShown) {
      console.log(JSON.stringify(failure));
    }
  }
  console.log(JSON.stringify({ cases: cases.length, failures }));
  process.exitCode = failures === 0 ? 0 : 1;
}

if (process.argv.length !== 3) {
  console.error('usage: node tests/oracle/apply.mjs <cases.json>');
  process.exit(2);
}
main(process.argv[2]);
