using YamlDotNet.Core;

namespace MoeCluster.Deploy.Tests;

public class HelmTemplateStripperTests
{
    [Fact]
    public void Inline_actions_become_distinct_placeholder_scalars()
    {
        var stripped = HelmTemplateStripper.Strip("name: {{ include \"x\" . }}-headless\nreplicas: {{ $pool.replicas }}\n");

        Assert.Equal("name: tpl1-headless\nreplicas: tpl2\n", stripped);
    }

    [Fact]
    public void Lines_holding_only_actions_are_dropped()
    {
        var stripped = HelmTemplateStripper.Strip(
            "metadata:\n  labels:\n    {{- include \"labels\" . | nindent 4 }}\n{{- if .Values.x }}\n  a: 1\n{{- end }}\n");

        Assert.Equal("metadata:\n  labels:\n  a: 1\n", stripped);
    }

    [Fact]
    public void Only_the_first_branch_of_an_if_else_is_kept()
    {
        var stripped = HelmTemplateStripper.Strip(
            "{{- if .a }}\nkey: first\n{{- else if .b }}\nkey: second\n{{- else }}\nkey: third\n{{- end }}\nafter: 1\n");

        Assert.Equal("key: first\nafter: 1\n", stripped);
    }

    [Fact]
    public void Define_blocks_and_comments_produce_no_output()
    {
        var stripped = HelmTemplateStripper.Strip(
            "{{/* a comment with \"quotes\" and }} */}}\n{{- define \"x\" }}\nhidden: 1\n{{- end }}\nshown: 2\n");

        Assert.Equal("shown: 2\n", stripped);
    }

    [Fact]
    public void Braces_inside_action_strings_do_not_end_the_action()
    {
        var actions = HelmTemplateStripper.Actions("summary: \"node {{ \"{{\" }} $labels.pod {{ \"}}\" }} down\"");

        Assert.Equal(["\"{{\"", "\"}}\""], actions.Select(a => a.Words));
    }

    [Fact]
    public void A_multi_line_action_counts_as_one_line()
    {
        var stripped = HelmTemplateStripper.Strip("{{- $x := dict\n    \"a\" 1 }}\nkey: {{ $x.a\n }}\n");

        Assert.Equal("key: tpl1\n", stripped);
    }

    [Fact]
    public void Real_indentation_errors_still_fail_to_parse_after_stripping()
    {
        var stripped = HelmTemplateStripper.Strip(
            "spec:\n  replicas: {{ .Values.replicas }}\n    serviceName: {{ .Values.name }}\n");

        Assert.ThrowsAny<YamlException>(() => YamlJson.LoadAll(stripped));
    }

    [Fact]
    public void A_duplicated_key_outside_alternative_branches_fails_to_parse()
    {
        var stripped = HelmTemplateStripper.Strip(
            "{{- if .a }}\nports: []\n{{- end }}\n{{- if .b }}\nports: []\n{{- end }}\n");

        Assert.ThrowsAny<Exception>(() => YamlJson.LoadAll(stripped));
    }

    [Fact]
    public void An_unclosed_block_is_reported()
    {
        var error = Assert.Throws<FormatException>(() => HelmTemplateStripper.Strip("{{- if .a }}\nkey: 1\n"));

        Assert.Contains("never closed", error.Message);
    }
}
