namespace MoeCluster.Placement;

/// <summary>
/// The words placement and replication use, as vLLM's <c>eplb_state.py</c> opens with them.
/// <list type="bullet">
/// <item><b>logical expert</b>: (layer, expert index) of the checkpoint, <see cref="ExpertId"/>, written <c>L{layer}.E{expert}</c>.</item>
/// <item><b>replica</b> (physical expert): one loaded copy of a logical expert on one node. A logical expert has
/// 1..n replicas; replica 0 is the <b>primary</b>, the one <see cref="ExpertPlacement"/> places. The others are
/// redundant copies <see cref="ReplicationPlanner"/> adds for hot experts.</item>
/// <item><b>node</b>: a cluster member with the <c>expert</c> role, identified by its address, with a capacity in
/// expert slots (the most replicas it may hold), <see cref="NodeCapacity"/>.</item>
/// <item><b>placement</b>: the map replica → node, <see cref="PlacementPlan"/>.</item>
/// <item><b>load window</b>: tokens routed to each logical expert over the last W steps, <see cref="LoadWindow"/>
/// (recorded by <see cref="SlidingLoadWindow"/>).</item>
/// <item><b>per-replica target</b>: a layer's tokens divided by its number of logical experts — what each expert would
/// receive if routing were perfectly even. Replication compares an expert's tokens per replica with it.</item>
/// <item><b>balancedness</b>: mean ÷ max tokens per expert of a layer (1.0 = perfectly balanced), as vLLM logs it,
/// <see cref="Balancedness"/>. With replicas, an expert's tokens are split evenly over its replicas
/// (<see cref="ReplicaSplitter"/>).</item>
/// </list>
/// Everything here is a pure function of its inputs: deterministic, no clocks, no randomness, no I/O, so the
/// placement coordinator can be tested without a cluster.
/// </summary>
public static class Glossary
{
}
