// Where deploy/fetch-tokenizers.sh leaves the tokenizer files (the tests read the same place).
import { homedir } from 'node:os';
import { join } from 'node:path';

export const TOKENIZERS = { qwen3: 'qwen3', llama3: 'llama3', deepseek_v3: 'deepseek_v3', llama2: 'llama2' };

export function tokenizerDirectory(name) {
  const root = process.env.MOECLUSTER_TOKENIZER_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'moecluster', 'tokenizers');
  return join(root, name);
}
