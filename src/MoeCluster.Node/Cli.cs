namespace MoeCluster.Node;

public static class Cli
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("moecluster: no commands yet");
        return 1;
    }
}
