using MoeCluster.Node.Commands;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Tests;

public sealed class ServingOptionsSpec
{
    [Fact]
    public void Keys_come_from_the_comma_list_and_the_key_file_together()
    {
        var file = Path.GetTempFileName();
        File.WriteAllLines(file, ["# rotated monthly", "sk-file-1", "", "  sk-file-2  ", "sk-env-1"]);
        try
        {
            var env = new Dictionary<string, string?> { [ServingOptions.ApiKeysVariable] = "sk-env-1, sk-env-2,", [ServingOptions.ApiKeysFileVariable] = file };
            var options = new ServingOptions().FromEnvironment(name => env.GetValueOrDefault(name));
            Assert.Equal(["sk-env-1", "sk-env-2", "sk-file-1", "sk-file-2"], options.ApiKeys);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void A_missing_key_file_is_an_error_naming_the_variable_and_path()
    {
        var env = new Dictionary<string, string?> { [ServingOptions.ApiKeysFileVariable] = "/nonexistent/keys.txt" };
        var e = Assert.Throws<FileNotFoundException>(() => new ServingOptions().FromEnvironment(name => env.GetValueOrDefault(name)));
        Assert.Contains(ServingOptions.ApiKeysFileVariable, e.Message);
        Assert.Contains("/nonexistent/keys.txt", e.Message);
    }

    [Fact]
    public void The_model_name_is_the_checkpoint_directory_name()
    {
        Assert.Equal("Qwen1.5-MoE-A2.7B", ServingOptions.ModelNameFor("/models/Qwen1.5-MoE-A2.7B/"));
    }

    [Fact]
    public void Wire_dtype_bfloat16_reaches_the_cluster_options_and_anything_else_is_refused_by_name()
    {
        var model = Path.Combine(AppContext.BaseDirectory, "no-model-needed");
        ServeOptions Parse(params string[] extra) => ServeCommand.Resolve(ServeCommand.Create().Parse(["--model", model, .. extra]));
        Assert.Null(Parse().Cluster.WireDType);
        Assert.Null(Parse("--wire-dtype", "float32").Cluster.WireDType);
        Assert.Equal("bfloat16", Parse("--wire-dtype", "bfloat16").Cluster.WireDType);
        var e = Assert.Throws<ArgumentException>(() => Parse("--wire-dtype", "int8"));
        Assert.Contains("--wire-dtype", e.Message);
        Assert.Contains("int8", e.Message);
    }
}
