// The generated corpus the tokenizer tests compare on: 10,000+ strings of the kinds users send (scripts, emoji, code,
// whitespace runs, control characters, decomposed text, special-token text, long runs of one character), from a
// seeded generator so every run makes the same strings.
export function makeCorpus(count = 10000, seed = 20250716) {
  let state = seed >>> 0;
  const random = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (list) => list[Math.floor(random() * list.length)];
  const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));

  const english = ['The', 'quick', 'brown', 'fox', 'jumps', 'over', 'the', 'lazy', 'dog.', 'Hello', 'world!', 'mixture',
    'of', 'experts', 'routes', 'every', 'token', 'to', 'its', 'top-k', 'experts,', 'naïve', 'café', 'résumé', 'coöperate',
    "I'm", "DON'T", "they'll", "we've", "she'd", "it's", "You're", "O'Neil", 'it’s', "'s", "'LL", 'HTTP/1.1', 'e-mail'];
  const code = ['def main():\n    return 42\n', 'for (int i = 0; i < n; i++) {', '}', 'x += 1;', '#include <stdio.h>',
    'SELECT * FROM t WHERE id = 7;', 'console.log("hi")', '    if x:\n\tpass', 'a_b_c = {"k": [1, 2.5, null]}',
    '<div class="x">&amp;</div>', '$ ls -la | grep .cs', '```python\nprint(1)\n```', '{{ message.content }}', '{% if x %}',
    '=>', '!==', '::', '...', '// comment', '/* c */', '0x1F', '1e-9', '3.14159', '-273.15', '1,000,000', '12345678901234'];
  const scripts = ['数据模型专家路由', '中文测试，标点。', 'こんにちは世界', 'カタカナとひらがな', '안녕하세요 한국어', 'مرحبا بالعالم',
    'שלום עולם', 'नमस्ते दुनिया', 'สวัสดีชาวโลก', 'Привет, мир', 'Γειά σου Κόσμε', 'ΣΊΣΥΦΟΣ σίσυφος', 'Tiếng Việt có dấu',
    'Ελληνικά', 'ქართული', 'Հայերեն', 'አማርኛ', 'ᚠᛇᚻ', 'தமிழ்', 'ខ្មែរ', 'Ünïcödé', 'İstanbul ıi', 'straße STRASSE'];
  const emoji = ['🙂', '🚀', '👍🏽', '👩‍👩‍👧', '🏳️‍🌈', '🇫🇷', '❤️', '✨', '1️⃣', '🧑🏿‍💻', '😀😃😄', '🤖', '⌚', '☕'];
  const astral = ['𝐀𝐁𝐂', '𝑥𝑦𝑧', '𠀀𠀁𠀂', '𐐷𐑏', '𝟙𝟚𝟛', '𝔘𝔫𝔦', '𓀀𓀁', '🄰🄱', '𝒜𝓑', '𐍈'];
  const spaces = [' ', '  ', '   ', '\t', '\n', '\r\n', '\n\n', '\u00A0', '\u3000', '\u2028', '\u2029', '\u200B', ' \n ', '\t\t', '\v', '\f'];
  const controls = ['\u0000', '\u0001', '\u0007', '\u001B', '\u001F', '\u007F', '\u0085', '\uFEFF', '\u200D', '\u00AD', '\u202E', '\u2066'];
  const decomposed = ['e\u0301', 'A\u030A', '\u212B', 'n\u0303', 'o\u0308\u0304', 'a\u0323\u0302', '\u1100\u1161\u11A8',
    'ﬁ', 'ﬀ', '①', 'ｆｕｌｌ', 'Ⅻ', '²', '½', 'Ǆ', 'ǅ', 'ﾊﾝｶｸ', '\u00C5', 'q\u0307\u0323', '\u0301start', 'ḱ', 'ệ'];
  const braces = ['{', '}', '{{', '}}', '[', ']', '(', ')', '<', '>', '"', "'", '`', '\\', '|', '—', '–', '“', '”', '«»', '¿¡'];
  const specials = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|begin_of_text|>', '<|eot_id|>', '<s>', '</s>', '<unk>',
    '<think>', '</think>', '<|im_start', 'im_start|>', '<|reserved_special_token_5|>'];
  const runChars = ['a', 'A', ' ', '\n', '=', '-', '数', '🙂', '0', '.', 'é', '▁', 'ab', '\t', '*', 'z'];

  const fragment = () => {
    const r = random();
    if (r < 0.22) return pick(english);
    if (r < 0.34) return pick(code);
    if (r < 0.48) return pick(scripts);
    if (r < 0.55) return pick(emoji);
    if (r < 0.59) return pick(astral);
    if (r < 0.66) return pick(spaces);
    if (r < 0.69) return pick(controls);
    if (r < 0.76) return pick(decomposed);
    if (r < 0.81) return pick(braces);
    if (r < 0.85) return pick(specials);
    if (r < 0.92) return pick(runChars).repeat(int(2, 40));
    // Random code points anywhere in Unicode (no surrogates).
    let s = '';
    for (let n = int(1, 6); n > 0; n--) {
      let cp = random() < 0.7 ? int(0x20, 0xFFFD) : int(0x10000, 0x10FFFF);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x4E00;
      s += String.fromCodePoint(cp);
    }
    return s;
  };
  const glue = () => (random() < 0.6 ? ' ' : random() < 0.5 ? '' : pick(spaces));

  const corpus = [];
  // Long runs of one character, where equal-score merges decide the split.
  for (const c of ['a', ' ', '\n', '=', '数', '🙂', '0', 'é', '▁', '-']) {
    for (const n of [257, 1000, 3001]) corpus.push(c.repeat(n));
  }
  corpus.push('', ' ', '\n', 'a', '🙂');
  while (corpus.length < count) {
    const parts = [];
    for (let n = int(1, 10); n > 0; n--) parts.push(fragment());
    let text = parts.join(glue());
    if (random() < 0.1) text = pick(spaces) + text;
    if (random() < 0.1) text = text + pick(spaces);
    corpus.push(text);
  }
  return corpus;
}
