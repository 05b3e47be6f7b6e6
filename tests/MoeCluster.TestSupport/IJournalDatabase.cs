namespace MoeCluster.TestSupport;

/// <summary>A PostgreSQL database a test's nodes keep their job journal in, and reads back to count events.</summary>
public interface IJournalDatabase : IDisposable
{
    string ConnectionString { get; }
    long Scalar(string sql);
}
