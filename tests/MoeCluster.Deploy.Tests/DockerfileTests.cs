using System.Text.RegularExpressions;
using System.Xml.Linq;
using MoeCluster.Node;

namespace MoeCluster.Deploy.Tests;

public class DockerfileTests
{
    static readonly DockerfileModel Dockerfile = DockerfileModel.Load(RepoPaths.Dockerfile);
    static DockerfileModel.Stage Final => Dockerfile.Stages[^1];

    [Fact]
    public void Image_is_built_in_a_build_stage_and_shipped_from_a_final_stage()
    {
        Assert.Equal("final", Final.Name);
        Assert.Equal("mcr.microsoft.com/dotnet/sdk:10.0-noble", Dockerfile.ExternalBase(Dockerfile["build"]));
        Assert.Contains(FinalInstructions("COPY"), c => c.Arguments.StartsWith("--from=build", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda")]
    public void Runtime_runs_on_the_ubuntu_noble_aspnet_image_for_each_torch_backend(string backend)
    {
        var buildArgs = new Dictionary<string, string> { ["TORCH_BACKEND"] = backend };

        Assert.Equal("mcr.microsoft.com/dotnet/aspnet:10.0-noble", Dockerfile.ExternalBase(Final, buildArgs));
        Assert.Contains(Dockerfile.Lineage(Final, buildArgs), s => s.Name == $"runtime-{backend}");
    }

    [Fact]
    public void Default_torch_backend_is_cpu_and_restore_and_publish_both_pass_it_on()
    {
        var runs = Dockerfile["build"].Instructions.Where(i => i.Keyword == "RUN").Select(i => i.Arguments).ToList();

        Assert.Equal("cpu", Dockerfile.GlobalArgs["TORCH_BACKEND"]);
        Assert.Contains(runs, r => r.Contains("dotnet restore") && r.Contains("-p:TorchBackend=${TORCH_BACKEND}"));
        Assert.Contains(runs, r => r.Contains("dotnet publish") && r.Contains("-p:TorchBackend=${TORCH_BACKEND}"));
    }

    [Fact]
    public void Container_runs_as_uid_10001_not_root()
    {
        var user = FinalInstructions("USER").Last().Arguments;

        Assert.Equal("10001", user.Split(':')[0]);
    }

    [Fact]
    public void Entrypoint_runs_moecluster_serve()
    {
        var entrypoint = DockerfileModel.ExecForm(FinalInstructions("ENTRYPOINT").Last());
        var cmd = DockerfileModel.ExecForm(FinalInstructions("CMD").Last());

        Assert.True(entrypoint is ["moecluster"] or ["dotnet", "/app/moecluster.dll"],
            $"ENTRYPOINT {string.Join(" ", entrypoint)} does not run moecluster");
        Assert.Equal(["serve"], cmd);
    }

    [Fact]
    public void Exposed_ports_are_exactly_the_node_defaults()
    {
        var exposed = FinalInstructions("EXPOSE").SelectMany(e => e.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(p => int.Parse(p.Split('/')[0])).Order().ToList();

        Assert.Equal(new[] { NodeDefaults.HttpPort, NodeDefaults.RemotingPort }.Order(), exposed);
    }

    [Fact]
    public void Healthcheck_asks_healthz_on_the_default_http_port()
    {
        var healthcheck = FinalInstructions("HEALTHCHECK").Last().Arguments;

        Assert.Contains("/healthz", healthcheck);
        Assert.Contains($":-{NodeDefaults.HttpPort}}}", healthcheck);
        Assert.Contains(FinalInstructions("RUN"), r => r.Arguments.Contains("install") && r.Arguments.Contains("curl"));
    }

    [Fact]
    public void Restore_layer_copies_every_project_the_node_needs_before_restoring()
    {
        var build = Dockerfile["build"].Instructions.ToList();
        var restoreAt = build.FindIndex(i => i.Keyword == "RUN" && i.Arguments.Contains("dotnet restore"));
        Assert.True(restoreAt > 0, "the build stage never runs dotnet restore");
        var copiedBeforeRestore = string.Join("\n", build.Take(restoreAt).Where(i => i.Keyword == "COPY").Select(i => i.Arguments));

        foreach (var project in NodeProjectClosure())
            Assert.Contains(project + " ", copiedBeforeRestore);
        foreach (var file in new[] { "global.json", "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props", "build/" })
            Assert.Contains(file, copiedBeforeRestore);
        Assert.DoesNotContain(build.Take(restoreAt), i => i.Keyword == "COPY" && i.Arguments.StartsWith("src/ ", StringComparison.Ordinal));
    }

    [Fact]
    public void Dockerignore_keeps_build_outputs_and_git_out_of_the_context()
    {
        var patterns = File.ReadAllLines(Path.Combine(RepoPaths.Root, ".dockerignore"))
            .Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();

        Assert.Contains("**/bin/", patterns);
        Assert.Contains("**/obj/", patterns);
        Assert.Contains(patterns, p => p is ".git" or ".git/");
        Assert.DoesNotContain(patterns, p => p.StartsWith("src", StringComparison.Ordinal) || p.StartsWith("models", StringComparison.Ordinal));
    }

    static IEnumerable<DockerfileModel.Instruction> FinalInstructions(string keyword) =>
        Dockerfile.Lineage(Final).Reverse().SelectMany(s => s.Instructions).Where(i => i.Keyword == keyword);

    /// <summary>src/MoeCluster.Node's csproj and every project it references, transitively, relative to the repo.</summary>
    static IReadOnlySet<string> NodeProjectClosure()
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([Path.Combine(RepoPaths.Root, "src/MoeCluster.Node/MoeCluster.Node.csproj")]);
        while (pending.TryPop(out var project))
        {
            if (!found.Add(Path.GetRelativePath(RepoPaths.Root, project).Replace('\\', '/'))) continue;
            foreach (var reference in XDocument.Load(project).Descendants("ProjectReference"))
            {
                var include = reference.Attribute("Include")!.Value.Replace('\\', '/');
                pending.Push(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(project)!, include)));
            }
        }
        return found;
    }
}
