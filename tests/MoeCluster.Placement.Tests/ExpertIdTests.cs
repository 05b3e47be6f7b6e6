namespace MoeCluster.Placement.Tests;

public class ExpertIdTests
{
    [Fact]
    public void String_form_names_layer_then_expert() =>
        Assert.Equal("L3.E12", new ExpertId(3, 12).ToString());

    [Fact]
    public void Parse_round_trips_the_string_form()
    {
        foreach (var id in Cluster.Experts(12, 70))
            Assert.Equal(id, ExpertId.Parse(id.ToString()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("L1E2")]
    [InlineData("l1.e2")]
    [InlineData("L-1.E2")]
    [InlineData("L1.E")]
    [InlineData("L1.E2x")]
    [InlineData(" L1.E2")]
    [InlineData("L+1.E2")]
    public void Parse_rejects_text_not_in_the_string_form(string text)
    {
        var error = Assert.Throws<FormatException>(() => ExpertId.Parse(text));
        Assert.Contains("L{layer}.E{expert}", error.Message);
        Assert.False(ExpertId.TryParse(text, out _));
    }

    [Fact]
    public void Ids_order_by_layer_then_expert()
    {
        ExpertId[] ids = [new(1, 0), new(0, 10), new(0, 2), new(1, 1)];
        Assert.Equal([new(0, 2), new(0, 10), new(1, 0), new(1, 1)], ids.Order());
    }

    [Fact]
    public void Negative_indices_are_rejected() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExpertId(0, -1));
}
