using MoeCluster.Bench;

return BenchCommands.Run(args);
