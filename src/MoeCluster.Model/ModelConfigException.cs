namespace MoeCluster.Model;

/// <summary>A config.json we cannot serve faithfully: names the file, the field, and what is supported.</summary>
public sealed class ModelConfigException(string message) : Exception(message);
