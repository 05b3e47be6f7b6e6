using MoeCluster.Node.Chat;

namespace MoeCluster.Node.Tests.Chat;

public class ToolCallStreamSpec
{
    [Fact]
    public void Calls_split_over_many_pieces_come_out_whole_and_the_text_around_them_stays_content()
    {
        var s = new ToolCallStream(parallel: true);
        string text = "Let me check.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>{\"name\":\"get_time\"}</tool_call>";
        var content = new System.Text.StringBuilder();
        var calls = new List<ToolCall>();
        foreach (var piece in text.Chunk(3).Select(c => new string(c)))
        {
            var (c, done) = s.Push(piece);
            content.Append(c);
            calls.AddRange(done);
        }
        var (rest, last) = s.Flush("");
        content.Append(rest);
        calls.AddRange(last);
        Assert.Equal("Let me check.", content.ToString());
        Assert.Equal(["get_weather", "get_time"], calls.Select(c => c.Name));
        Assert.Equal("{\"city\": \"Oslo\"}", calls[0].Arguments);
        Assert.Equal("{}", calls[1].Arguments);
    }

    [Fact]
    public void Text_that_only_looks_like_a_call_start_is_released_and_a_broken_call_stays_content()
    {
        var s = new ToolCallStream(parallel: false);
        Assert.Equal("a ", s.Push("a <tool").Content);                  // "<tool" could open a call: held back
        var (content, calls) = s.Flush("s> b <tool_call>not json</tool_call><tool_call>{\"name\":\"x\"}</tool_call><tool_call>{\"name\":\"y\"}</tool_call>");
        Assert.StartsWith("<tools> b <tool_call>not json</tool_call>", content);
        Assert.Equal(["x"], calls.Select(c => c.Name));   // parallel_tool_calls false keeps the first
    }
}
