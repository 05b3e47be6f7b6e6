namespace MoeCluster.Node.Chat;

/// <summary>One message of a chat request, its content flattened to text (text parts joined).</summary>
public sealed record ChatMessage(string Role, string Content);
