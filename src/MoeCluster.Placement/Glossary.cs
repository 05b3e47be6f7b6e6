namespace MoeCluster.Placement; /// <summary>Placement glossary lives here (see docs).</summary> public static class Glossary { }
