# syntax=docker/dockerfile:1
# The `moecluster` node image. See docs/DEPLOY.md.
#
#   CPU:   docker build -t moecluster:dev .
#   CUDA:  docker build --build-arg TORCH_BACKEND=cuda -t moecluster:dev-cuda .
#   Demo:  docker build --build-arg DEMO_MODEL=moe-tiny -t moecluster:demo .   (bakes models/moe-tiny into /models)
#
# Both stages are Ubuntu 24.04 (noble): its libstdc++ has GLIBCXX_3.4.32, so the Debian-12 patch of
# libLibTorchSharp.so (build/TorchSharpGlibcxxFix.targets) finds nothing to do and the shipped library is unmodified.

# cpu: libtorch-cpu-linux-x64. cuda: TorchSharp-cuda-linux, whose libtorch bundles the CUDA 12.8 runtime, cuBLAS and
# cuDNN; only the driver comes from the host (NVIDIA container toolkit), so no nvidia/cuda base image is needed.
ARG TORCH_BACKEND=cpu
# A directory under models/ holding config.json to copy into the image; empty = none (production mounts /models).
ARG DEMO_MODEL=

FROM mcr.microsoft.com/dotnet/sdk:10.0-noble AS build
ARG TORCH_BACKEND
# gcc builds libmoecluster_kernels.so (the AVX512-BF16 tile, build/NativeKernels.targets); without it the build warns
# and bfloat16 products run on the managed kernel.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Restore from project files alone, so the ~1 GB of TorchSharp/libtorch packages stays cached until a project,
# the central package versions or the build props change.
COPY global.json Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY build/ build/
COPY src/MoeCluster.Model/MoeCluster.Model.csproj src/MoeCluster.Model/
COPY src/MoeCluster.Placement/MoeCluster.Placement.csproj src/MoeCluster.Placement/
COPY src/MoeCluster.Runtime/MoeCluster.Runtime.csproj src/MoeCluster.Runtime/
COPY src/MoeCluster.Node/MoeCluster.Node.csproj src/MoeCluster.Node/
RUN dotnet restore src/MoeCluster.Node/MoeCluster.Node.csproj -p:TorchBackend=${TORCH_BACKEND}
COPY src/ src/
RUN dotnet publish src/MoeCluster.Node/MoeCluster.Node.csproj -c Release --no-restore \
        -p:TorchBackend=${TORCH_BACKEND} -p:UseAppHost=true -o /app

# Picks the demo model, if any, from the build context without requiring models/ to exist.
FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble AS demo-model
ARG DEMO_MODEL
RUN --mount=type=bind,source=.,target=/context \
    mkdir -p /out && \
    if [ -n "${DEMO_MODEL}" ]; then \
      if [ ! -f "/context/models/${DEMO_MODEL}/config.json" ]; then \
        echo "DEMO_MODEL=${DEMO_MODEL}: models/${DEMO_MODEL}/config.json not found in the build context" >&2; exit 1; \
      fi; \
      cp -r "/context/models/${DEMO_MODEL}" "/out/${DEMO_MODEL}"; \
    fi

# aspnet, not runtime: the node hosts ASP.NET Core (OpenAI API, /healthz, /readyz, /metrics).
FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble AS runtime-cpu
# curl only serves the HEALTHCHECK below; the aspnet image has neither curl nor wget.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 moecluster \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin moecluster \
    && mkdir -p /models /data \
    && chown 10001:10001 /models /data

FROM runtime-cpu AS runtime-cuda
# What nvidia/cuda images set: asks the NVIDIA container runtime to mount the host driver (libcuda.so, nvidia-smi).
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

FROM runtime-${TORCH_BACKEND} AS final
ARG DEMO_MODEL
WORKDIR /app
COPY --from=build --chown=10001:10001 /app/ /app/
COPY --from=demo-model --chown=10001:10001 /out/ /models/
ENV PATH="/app:${PATH}" \
    MOECLUSTER_DATA_DIR=/data \
    MOECLUSTER_MODEL=${DEMO_MODEL:+/models/}${DEMO_MODEL}
USER 10001:10001
EXPOSE 8080 4053
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${MOECLUSTER_HTTP_PORT:-8080}/healthz" > /dev/null || exit 1
ENTRYPOINT ["moecluster"]
CMD ["serve"]
