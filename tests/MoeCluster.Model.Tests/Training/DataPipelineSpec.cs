using MoeCluster.Model.Tests.Checkpoints;
using MoeCluster.Model.Training;

namespace MoeCluster.Model.Tests.Training;

public class DataPipelineSpec
{
    [Fact]
    public void Fortune_files_split_at_percent_lines_and_other_files_at_blank_lines()
    {
        Assert.Equal(["One.\n  Two.", "Three."], TextDocuments.Split("One.\n  Two.\n%\nThree.\n%\n"));
        Assert.Equal(["Para one\nstill one", "Para two"], TextDocuments.Split("Para one\r\nstill one\r\n\r\n\r\nPara two\r\n"));
        Assert.Empty(TextDocuments.Split("%\n%\n"));
    }

    [Fact]
    public void Every_nth_document_is_held_out_and_the_held_out_file_reads_back_unchanged()
    {
        var documents = Enumerable.Range(1, 45).Select(i => $"doc {i}\nline two").ToList();
        var (train, heldOut) = TextDocuments.SplitHeldOut(documents, 20);
        Assert.Equal(["doc 20\nline two", "doc 40\nline two"], heldOut);
        Assert.Equal(43, train.Count);
        Assert.DoesNotContain(train, heldOut.Contains);

        using var dir = new TempDirectory();
        TextDocuments.WriteFortuneFile(dir.File("held.txt"), heldOut);
        Assert.Equal(heldOut, TextDocuments.Read([dir.File("held.txt")]));
    }

    [Fact]
    public void Packed_windows_hold_documents_with_end_of_text_between_and_targets_shifted_by_one()
    {
        const int eot = 99;
        var packed = new PackedSequences([[1, 2, 3], [4, 5], [6, 7, 8, 9]], eot, sequenceLength: 4);
        // stream: 1 2 3 eot 4 5 eot 6 7 8 9 eot (12 tokens) -> windows start at 0 and 4; the one at 8 lacks a 5th token
        Assert.Equal(2, packed.Count);
        Assert.Equal([1, 2, 3, eot], packed.Window(0).Inputs.ToArray());
        Assert.Equal([2, 3, eot, 4], packed.Window(0).Targets.ToArray());
        Assert.Equal([4, 5, eot, 6], packed.Window(1).Inputs.ToArray());
        Assert.Equal([5, eot, 6, 7], packed.Window(1).Targets.ToArray());

        var (inputs, targets) = packed.Batch([1, 0]);
        using (inputs) using (targets)
        {
            Assert.Equal([2L, 4], inputs.shape);
            Assert.Equal([4L, 5, eot, 6, 1, 2, 3, eot], inputs.data<long>().ToArray());
            Assert.Equal([5L, eot, 6, 7, 2, 3, eot, 4], targets.data<long>().ToArray());
        }
    }

    [Fact]
    public void Learning_rate_warms_up_linearly_then_follows_a_cosine_to_a_tenth_of_the_peak()
    {
        var s = new CosineSchedule(Peak: 1e-3, WarmupSteps: 10, TotalSteps: 110);
        Assert.Equal(1e-4, s.At(1), 12);
        Assert.Equal(1e-3, s.At(10), 12);
        Assert.Equal(0.55e-3, s.At(60), 12);   // halfway through the decay: midpoint of peak and floor
        Assert.Equal(1e-4, s.At(110), 12);
        Assert.True(s.At(30) > s.At(31));
    }

    [Fact]
    public void Every_batch_of_an_epoch_is_distinct_and_the_order_depends_only_on_the_seed()
    {
        var a = new BatchOrder(12, 4, seed: 3);
        var epoch = Enumerable.Range(0, 3).SelectMany(_ => a.Next()).ToList();
        Assert.Equal(Enumerable.Range(0, 12), epoch.Order());
        var b = new BatchOrder(12, 4, seed: 3);
        Assert.Equal(epoch, Enumerable.Range(0, 3).SelectMany(_ => b.Next()));
    }

    [Fact]
    public void Unigram_baseline_scores_tokens_by_add_one_smoothed_training_frequency()
    {
        var baseline = new UnigramBaseline([0, 0, 0, 1], vocabSize: 4);   // smoothed counts 4, 2, 1, 1 of 8
        Assert.Equal(-Math.Log(0.5), baseline.MeanLoss([0]), 12);
        Assert.Equal((-Math.Log(0.25) - Math.Log(0.125)) / 2, baseline.MeanLoss([1, 3]), 12);
    }

    [Fact]
    public void Expert_load_reports_percent_per_expert_and_balancedness_as_mean_over_max()
    {
        var load = new ExpertLoad(0, [10, 30, 20, 40]);
        Assert.Equal([10.0, 30, 20, 40], load.Percent);
        Assert.Equal(25.0 / 40, load.Balancedness, 12);
    }
}
