using MoeCluster.Node.Http;

namespace MoeCluster.Node.Tests;

public sealed class StopStringMatcherSpec
{
    [Fact]
    public void A_stop_string_split_across_pieces_is_found_and_never_shown()
    {
        var m = new StopStringMatcher(["END"]);
        Assert.Equal(("hello ", false), m.Push("hello E"));
        Assert.Equal(("", false), m.Push("N"));
        Assert.Equal(("", true), m.Push("D and more"));
    }

    [Fact]
    public void A_partial_match_that_does_not_complete_is_released()
    {
        var m = new StopStringMatcher(["END"]);
        Assert.Equal(("a", false), m.Push("aE"));
        Assert.Equal(("EX", false), m.Push("X"));
        Assert.Equal(("b", false), m.Push("bE"));
        Assert.Equal("E", m.Flush());
    }

    [Fact]
    public void The_earliest_of_several_stop_strings_wins()
    {
        var m = new StopStringMatcher(["world", "lo"]);
        Assert.Equal(("hel", true), m.Push("hello world"));
    }

    [Fact]
    public void Without_stop_strings_text_passes_straight_through()
    {
        var m = new StopStringMatcher([]);
        Assert.Equal(("abc", false), m.Push("abc"));
        Assert.Equal("", m.Flush());
    }
}
