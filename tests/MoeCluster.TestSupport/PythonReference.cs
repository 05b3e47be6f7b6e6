using System.Diagnostics;
using System.Text;

namespace MoeCluster.TestSupport;

/// <summary>
/// Runs a cross-check script on Debian's python3, where deploy/install-test-deps.sh installs python3-sentencepiece and
/// python3-jinja2 (the reference implementations; never runtime dependencies). The script reads stdin and writes
/// stdout, both UTF-8; a failing script fails the test with its stderr.
/// </summary>
public static class PythonReference
{
    /// <summary>Debian's interpreter: a python3 earlier on PATH (pyenv, venv) does not see the Debian packages.</summary>
    public static string Interpreter => File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

    public static string Run(string script, string input, params string[] args)
    {
        string file = Path.Combine(Path.GetTempPath(), $"moecluster-ref-{Guid.NewGuid():N}.py");
        File.WriteAllText(file, script);
        try
        {
            var start = new ProcessStartInfo(Interpreter)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                StandardInputEncoding = new UTF8Encoding(false),
                StandardOutputEncoding = Encoding.UTF8,
                StandardErrorEncoding = Encoding.UTF8,
            };
            start.ArgumentList.Add(file);
            foreach (string arg in args)
            {
                start.ArgumentList.Add(arg);
            }
            start.Environment["PYTHONIOENCODING"] = "utf-8";
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {Interpreter}");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.StandardInput.Write(input);
            process.StandardInput.Close();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException(
                    $"{Interpreter} {file} exited with {process.ExitCode} (deploy/install-test-deps.sh installs python3-sentencepiece and python3-jinja2):\n{stderr.Result}");
            }
            return stdout.Result;
        }
        finally
        {
            File.Delete(file);
        }
    }
}
