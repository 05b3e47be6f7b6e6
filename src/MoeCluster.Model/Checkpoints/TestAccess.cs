using System.Runtime.CompilerServices;

// The chunked copy path only runs for tensors over 1 GiB; tests drive it with small chunks instead.
[assembly: InternalsVisibleTo("MoeCluster.Model.Tests")]
