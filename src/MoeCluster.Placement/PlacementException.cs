namespace MoeCluster.Placement;

/// <summary>A placement or replication request cannot be satisfied; the message names the numbers involved.</summary>
public sealed class PlacementException : Exception
{
    /// <summary>Creates the exception with a message that says what to change.</summary>
    public PlacementException(string message) : base(message)
    {
    }
}
