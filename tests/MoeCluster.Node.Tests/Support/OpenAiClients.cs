using System.ClientModel;
using OpenAI;
using OpenAI.Chat;

namespace MoeCluster.Node.Tests.Support;

/// <summary>The official OpenAI client pointed at a test host.</summary>
public static class OpenAiClients
{
    public static ChatClient Chat(this ServingFixture f, string key = "unused") =>
        new(f.Model.Name, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(f.Host.BaseAddress, "v1") });
}
