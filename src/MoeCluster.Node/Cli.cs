using System.CommandLine;

namespace MoeCluster.Node;

/// <summary>The `moecluster` command line. Each subcommand lives in its own file (Commands/*.cs).</summary>
public static class Cli
{
    public static int Run(string[] args)
    {
        var root = new RootCommand("MoeCluster: serve Mixture-of-Experts language models on an elastic Akka.NET cluster.")
        {
            Commands.ServeCommand.Create(),
            Commands.GenerateCommand.Create(),
            Commands.TokenizeCommand.Create(),
            Commands.PlacementCommand.Create(),
            Commands.DemoCommand.Create(),
            Commands.JobsCommand.Create(),
            Commands.BenchCommand.Create(),
            Commands.TrainCommand.Create(),
        };
        foreach (var extra in ExtraCommands) root.Subcommands.Add(extra());
        return root.Parse(args).Invoke();
    }

    /// <summary>Further subcommands registered by other files (demo, train, jobs, bench).</summary>
    internal static readonly List<Func<Command>> ExtraCommands = [];
}
