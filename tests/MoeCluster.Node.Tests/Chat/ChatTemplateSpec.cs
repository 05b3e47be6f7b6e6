using MoeCluster.Node.Chat;
using MoeCluster.Node.Chat.Jinja;

namespace MoeCluster.Node.Tests.Chat;

public sealed class ChatTemplateSpec
{
    static readonly ChatMessage[] Conversation = [new("system", "Be brief."), new("user", "Hi"), new("assistant", "Hello!"), new("user", "Bye")];

    static string Render(string template, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, string bos = "<s>", string eos = "</s>")
    {
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = messages.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = bos,
            ["eos_token"] = eos,
            ["raise_exception"] = (JinjaFunction)((args, _) => throw new TemplateRaisedException((string)args[0]!)),
            ["namespace"] = (JinjaFunction)((_, kw) => { var ns = new Namespace(); foreach (var (k, v) in kw) ns[k] = v; return ns; }),
        };
        return JinjaTemplate.Compile(template).Render(variables);
    }

    [Fact]
    public void Qwen2_chatml_template_renders_like_transformers()
    {
        var text = Render(Support.TinyServingModel.QwenChatTemplate, [new("user", "Hi")]);
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", text);
    }

    const string Mixtral =
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

    [Fact]
    public void Mixtral_template_renders_inst_blocks_and_rejects_non_alternating_roles()
    {
        Assert.Equal("<s>[INST] Hi [/INST]Hello!</s>[INST] Bye [/INST]", Render(Mixtral, Conversation[1..]));
        var e = Assert.Throws<TemplateRaisedException>(() => Render(Mixtral, [new("user", "a"), new("user", "b")]));
        Assert.Contains("alternate", e.Message);
    }

    // OLMoE-1B-7B-0924-Instruct, with its newlines between tags: trim_blocks drops those after block tags, while the
    // newline after an expression stays (so a non-final assistant turn is followed by a blank line, as in transformers).
    const string Olmoe = "{{ bos_token }}{% for message in messages %}\n{% if message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] }}\n{% elif message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] }}\n{% elif message['role'] == 'assistant' %}\n{% if not loop.last %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token + '\n' }}\n{% else %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>\n' }}\n{% endif %}\n{% endfor %}";

    [Fact]
    public void Olmoe_template_with_block_newlines_keeps_only_the_newlines_jinja_keeps()
    {
        var text = Render(Olmoe, Conversation, bos: "|||IP_ADDRESS|||", eos: "<|endoftext|>");
        Assert.Equal("|||IP_ADDRESS|||<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello!<|endoftext|>\n\n<|user|>\nBye\n<|assistant|>\n\n", text);
    }

    // Llama-3-style: set/namespace, slicing, whitespace control, filters and tests.
    const string LlamaStyle = """
        {%- set ns = namespace(system='') -%}
        {%- if messages[0]['role'] == 'system' -%}
            {%- set ns.system = messages[0]['content'] | trim -%}
            {%- set loop_messages = messages[1:] -%}
        {%- else -%}
            {%- set loop_messages = messages -%}
        {%- endif -%}
        {{- bos_token -}}
        {%- if ns.system is defined and ns.system | length > 0 %}<|system|>{{ ns.system }}<|eot|>{% endif -%}
        {%- for m in loop_messages if m.content is string -%}
            <|{{ m.role }}|>{{ m['content'] | trim }}<|eot|>
        {%- endfor -%}
        {%- if add_generation_prompt -%}<|assistant|>{%- endif -%}
        """;

    [Fact]
    public void Namespace_set_slicing_filters_and_tests_work_together()
    {
        var text = Render(LlamaStyle, [new("system", "  Be brief.  "), new("user", " Hi "), new("assistant", "Hello!")]);
        Assert.Equal("<s><|system|>Be brief.<|eot|><|user|>Hi<|eot|><|assistant|>Hello!<|eot|><|assistant|>", text);
    }

    [Fact]
    public void Set_inside_a_loop_does_not_leak_out_but_a_namespace_attribute_does()
    {
        const string t = "{% set n = 0 %}{% set ns = namespace(n=0) %}{% for m in messages %}{% set n = n + 1 %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ n }}/{{ ns.n }}";
        Assert.Equal("0/4", Render(t, Conversation));
    }

    [Fact]
    public void Expressions_follow_jinja_precedence_and_python_semantics()
    {
        Assert.Equal("7|a-b|True|False|cba|2|x", Render(
            "{{ 1 + 2 * 3 }}|{{ 'a' ~ '-' ~ 'b' }}|{{ 'ell' in 'hello' }}|{{ not true or false }}|{{ 'abc'[::-1] }}|{{ [1,2,3][1:] | length }}|{{ 'x' if messages else 'y' }}",
            Conversation));
        Assert.Equal("HELLO world", Render("{{ 'hello'.upper() }} {{ ' world '.strip() }}", []));
        // Integer arithmetic stays integral, so computed indices work.
        Assert.Equal("3|True|user|2.5|-2", Render("{{ 1 + 2 }}|{{ (7 // 2) is integer }}|{{ messages[0 + 1]['role'] }}|{{ 5 / 2 }}|{{ [1, 2][::-1][1] - 3 }}", Conversation));
    }

    [Theory]
    [InlineData("{% include 'x.jinja' %}", "include")]
    [InlineData("{{ x | frobnicate }}", "frobnicate")]
    [InlineData("{% if x is shiny %}{% endif %}", "shiny")]
    [InlineData("{% if x %}unclosed", "endif")]
    public void A_template_that_cannot_be_rendered_is_refused_at_load_naming_the_construct(string template, string construct)
    {
        var e = Assert.Throws<ChatTemplateException>(() => new ChatPromptRenderer(new Dictionary<string, string> { ["default"] = template }, new Dictionary<string, string>()));
        Assert.Contains(construct, e.Message);
        Assert.Contains("--chat-template", e.Message);
    }

    [Fact]
    public void A_checkpoint_without_a_template_refuses_chat_instead_of_guessing_a_format()
    {
        var renderer = ChatPromptRenderer.ForCheckpoint(null);
        Assert.False(renderer.HasTemplate);
        var e = Assert.Throws<ChatTemplateException>(() => renderer.Render([new("user", "Hi")]));
        Assert.Contains("--chat-template", e.Message);
    }

    [Fact]
    public void A_chat_template_override_is_used_instead_of_the_checkpoints_and_may_be_a_file()
    {
        string file = Path.Combine(Path.GetTempPath(), $"moecluster-template-{Guid.NewGuid():N}.jinja");
        File.WriteAllText(file, "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}");
        try
        {
            var renderer = ChatPromptRenderer.ForCheckpoint(null, file);
            Assert.Equal("[user] Hi\n", renderer.Render([new("user", "Hi")]));
            Assert.Contains(file, renderer.Source);
            Assert.Equal("Hi!", ChatPromptRenderer.ForCheckpoint(null, "{{ messages[0].content }}!").Render([new("user", "Hi")]));
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void Named_templates_pick_tool_use_when_tools_are_given_and_default_otherwise()
    {
        var renderer = new ChatPromptRenderer(new Dictionary<string, string> { ["default"] = "plain", ["tool_use"] = "tools:{{ tools | length }}" }, new Dictionary<string, string>());
        Assert.Equal("plain", renderer.Render([new("user", "Hi")]));
        Assert.Equal("tools:1", renderer.Render(new ChatTemplateRequest(new System.Text.Json.Nodes.JsonArray()) { Tools = new System.Text.Json.Nodes.JsonArray(new System.Text.Json.Nodes.JsonObject { ["type"] = "function" }) }));
    }
}
