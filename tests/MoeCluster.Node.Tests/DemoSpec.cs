using Microsoft.Extensions.DependencyInjection;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Model.Tokenization;
using MoeCluster.Node.Commands;
using MoeCluster.Runtime.Gateway;
using MoeCluster.TestSupport;

namespace MoeCluster.Node.Tests;

public class DemoSpec
{
    [Fact]
    public async Task Demo_generation_through_the_three_node_cluster_equals_single_process_generation()
    {
        var model = DefaultModel.Directory();
        var tokenizer = ModelTokenizer.Load(model)!;
        var requests = DemoCommand.Requests(tokenizer, maxTokens: 24);

        Dictionary<string, IReadOnlyList<int>> expected;
        using (var single = MoeTransformer.Load(model, ModuleOptions.Cpu32))
        using (var engine = new LocalEngine(single, new BatchingOptions { MaxBatchSize = 16, ContextLength = 256 }))
            expected = engine.Run(requests).ToDictionary(p => p.Key, p => p.Value.Generated);

        var apps = await DemoCommand.StartNodesAsync(model, FreePorts.Next(), FreePorts.Next(), CancellationToken.None, quiet: true);
        try
        {
            var service = apps[0].Services.GetRequiredService<IGenerationService>();
            await Poll.UntilAsync(async () => (await service.GetStatusAsync()).Ready, TimeSpan.FromSeconds(120), "demo cluster ready");
            var results = await Task.WhenAll(requests.Select(r => service.GenerateToEndAsync(r)));
            foreach (var f in results)
            {
                Assert.NotEmpty(f.Generated);
                Assert.Equal(expected[f.RequestId], f.Generated);
            }
        }
        finally
        {
            foreach (var app in apps) { await app.StopAsync(); await app.DisposeAsync(); }
        }
    }

    [Fact]
    public async Task Demo_exit_prints_its_prompts_and_ends_without_an_error_line_or_a_stack_trace()
    {
        var (exit, stdout, stderr) = await NodeProcess.RunAsync(
            ["demo", "--exit", "--max-tokens", "6", "--port", FreePorts.Next().ToString(), "--http-port", FreePorts.Next().ToString()], TimeSpan.FromSeconds(240));
        Assert.Equal(0, exit);
        foreach (var prompt in DemoCommand.Prompts) Assert.Contains(prompt, stdout);
        Assert.Empty(LogLines.Errors((stdout + "\n" + stderr).Split('\n')));
    }
}
