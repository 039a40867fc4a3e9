// Patch application of web/poll-sse.js: the json-patch-tests suite, RFC 7386's examples,
// and what the client relies on: the input is never modified, failures leave nothing half
// applied, unchanged subtrees are shared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { applyPatch, mergePatch } from '../../web/poll-sse.js';

const suiteDir = new URL('../../diff/difftest/testdata/', import.meta.url);

// suite returns the cases of one file of the json-patch-tests suite that apply: all but
// those marked disabled (a scalar document, and duplicate members in an operation, which
// JSON.parse cannot show).
function suite(file) {
  const cases = JSON.parse(readFileSync(new URL(file, suiteDir), 'utf8'));
  return cases.map((c, i) => ({ ...c, name: `${file}#${i}: ${c.comment ?? ''}` })).filter((c) => !c.disabled);
}

// the files and how many of their cases apply at least
const suiteFiles = { 'tests.json': 75, 'spec_tests.json': 16 };

for (const [file, min] of Object.entries(suiteFiles)) {
  test(`json-patch-tests ${file}`, async (t) => {
    const cases = suite(file);
    assert.ok(cases.length >= min, `only ${cases.length} cases in ${file}`);
    for (const c of cases) {
      await t.test(c.name, () => checkSuiteCase(c));
    }
  });
}

function checkSuiteCase(c) {
  const before = structuredClone(c.doc);
  if ('error' in c) {
    assert.throws(() => applyPatch(c.doc, c.patch), undefined, c.error);
  } else {
    const got = applyPatch(c.doc, c.patch);
    if ('expected' in c) assert.deepStrictEqual(got, c.expected);
  }
  assert.deepStrictEqual(c.doc, before, 'the input document was modified');
}

test('a failing patch leaves nothing applied', () => {
  const doc = { a: { b: [1, 2, 3] }, c: 'x' };
  const before = structuredClone(doc);
  const patch = [
    { op: 'replace', path: '/c', value: 'y' },
    { op: 'remove', path: '/a/b/0' },
    { op: 'add', path: '/a/b/-', value: 4 },
    { op: 'remove', path: '/missing' },
  ];
  assert.throws(() => applyPatch(doc, patch));
  assert.deepStrictEqual(doc, before);
});

test('unchanged subtrees are shared, changed paths are new', () => {
  const doc = { rows: [{ id: 1, v: 1 }, { id: 2, v: 2 }], meta: { n: 2 } };
  const got = applyPatch(doc, [{ op: 'replace', path: '/rows/1/v', value: 3 }]);
  assert.equal(got.meta, doc.meta);
  assert.equal(got.rows[0], doc.rows[0]);
  assert.notEqual(got.rows, doc.rows);
  assert.notEqual(got.rows[1], doc.rows[1]);
  assert.equal(doc.rows[1].v, 2);
  assert.equal(got.rows[1].v, 3);
});

test('a copied value is not changed through its other place', () => {
  const doc = { a: { x: 1 } };
  const got = applyPatch(doc, [
    { op: 'replace', path: '/a/x', value: 2 },
    { op: 'copy', from: '/a', path: '/b' },
    { op: 'replace', path: '/b/x', value: 3 },
    { op: 'add', path: '/a/y', value: 4 },
  ]);
  assert.deepStrictEqual(got, { a: { x: 2, y: 4 }, b: { x: 3 } });
  assert.deepStrictEqual(doc, { a: { x: 1 } });
});

test('pointers: escapes, the empty key, "-" and the root', () => {
  const doc = { 'a/b': { '~': [0] }, '': 1 };
  assert.deepStrictEqual(applyPatch(doc, [{ op: 'add', path: '/a~1b/~0/-', value: 1 }]), {
    'a/b': { '~': [0, 1] },
    '': 1,
  });
  assert.deepStrictEqual(applyPatch(doc, [{ op: 'replace', path: '/', value: 2 }]), { 'a/b': { '~': [0] }, '': 2 });
  assert.deepStrictEqual(applyPatch(doc, [{ op: 'replace', path: '', value: [1] }]), [1]);
  assert.deepStrictEqual(applyPatch({ '~01': 1 }, [{ op: 'remove', path: '/~001' }]), {});
  for (const path of ['/~2', '/a~', 'a', '/a~1b/~0/01', '/a~1b/~0/1', '/a~1b/~0/-1']) {
    assert.throws(() => applyPatch(doc, [{ op: 'replace', path, value: 0 }]), undefined, path);
  }
  assert.throws(() => applyPatch(doc, [{ op: 'remove', path: '' }]));
  assert.throws(() => applyPatch(doc, [{ op: 'move', from: '/a~1b', path: '/a~1b/x' }]));
  assert.deepStrictEqual(applyPatch(doc, [{ op: 'move', from: '/a~1b', path: '/a~1b' }]), doc);
});

test('members named __proto__ are ordinary members', () => {
  const doc = JSON.parse('{"__proto__": {"a": 1}}');
  const got = applyPatch(doc, [
    { op: 'replace', path: '/__proto__/a', value: 2 },
    { op: 'add', path: '/x', value: JSON.parse('{"__proto__": 3}') },
  ]);
  assert.equal(Object.getPrototypeOf(got), Object.prototype);
  assert.deepStrictEqual(Object.getOwnPropertyDescriptor(got, '__proto__').value, { a: 2 });
  assert.equal(Object.getOwnPropertyDescriptor(got.x, '__proto__').value, 3);
  const added = applyPatch({}, [{ op: 'add', path: '/__proto__', value: 1 }]);
  assert.deepStrictEqual(Object.keys(added), ['__proto__']);
  const merged = mergePatch({}, JSON.parse('{"__proto__": {"b": 1}}'));
  assert.deepStrictEqual(Object.keys(merged), ['__proto__']);
  assert.equal(Object.getPrototypeOf(merged), Object.prototype);
});

test('replace keeps the member order', () => {
  const got = applyPatch({ a: 1, b: 2, c: 3 }, [{ op: 'replace', path: '/b', value: 4 }]);
  assert.deepStrictEqual(Object.keys(got), ['a', 'b', 'c']);
});

// The examples of RFC 7386, Appendix A: target, patch, result.
const mergeExamples = [
  [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
  [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
  [{ a: 'b' }, { a: null }, {}],
  [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
  [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
  [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
  [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
  [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
  [['a', 'b'], ['c', 'd'], ['c', 'd']],
  [{ a: 'b' }, ['c'], ['c']],
  [{ a: 'foo' }, null, null],
  [{ a: 'foo' }, 'bar', 'bar'],
  [{ e: null }, { a: 1 }, { e: null, a: 1 }],
  [[1, 2], { a: 'b', c: null }, { a: 'b' }],
  [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
];

test('merge patch: RFC 7386 examples', () => {
  for (const [target, patch, want] of mergeExamples) {
    const before = structuredClone(target);
    assert.deepStrictEqual(mergePatch(target, patch), want, JSON.stringify([target, patch]));
    assert.deepStrictEqual(target, before, 'the target was modified');
  }
});

test('merge patch shares what it does not touch', () => {
  const doc = { a: { x: 1 }, b: { y: 2 } };
  const got = mergePatch(doc, { b: { y: 3 } });
  assert.equal(got.a, doc.a);
  assert.deepStrictEqual(got, { a: { x: 1 }, b: { y: 3 } });
  assert.deepStrictEqual(doc.b, { y: 2 });
});
