# sm-text-pipeline: bring-your-own SageMaker container (hosting: `serve`, training: `train`).
#
# Build with `bash scripts/build_image.sh` (what `make image` runs): it downloads the locked wheels
# into ./wheels on the host first, then picks the base. Nothing in this file reaches a Python
# index; apt reaches Debian's archive for WordNet (in a throw-away stage) and for nginx (the
# buffering front end, in the runtime stage).
#
# BASE_IMAGE: any Debian bookworm image with Python 3.11 and venv support. Either the public
# python image (default; pulled from ECR Public, which CodeBuild reaches without Docker Hub's rate
# limits) or the debootstrap-built local image from scripts/base_image.sh (python3 3.11 from
# Debian) for machines that reach no registry. Every stage starts FROM the same base, so the venv
# built in one stage runs in the final one.
#
# No `# syntax=` line and no BuildKit-only instructions: builds with the classic builder too.
ARG BASE_IMAGE=public.ecr.aws/docker/library/python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# NLTK data, laid out as NLTK reads it (<NLTK_DATA>/corpora/<corpus>/): WordNet 3.0 from Debian,
# NLTK's English stop words; requirements/nltk/install.sh is the one recipe (the host's
# scripts/setup.sh runs it too).
FROM ${BASE_IMAGE} AS nltk-data
# (Build stages carry this label so scripts/build_image.sh can prune their stale results.)
LABEL sm-text-pipeline.stage=nltk-data
ARG DEBIAN_FRONTEND=noninteractive
COPY requirements/nltk/ /tmp/nltk/
RUN apt-get update -qq && sh /tmp/nltk/install.sh /nltk_data \
    && rm -rf /var/lib/apt/lists/* /tmp/nltk

# ---------------------------------------------------------------------------------------------
# Locked third-party dependencies in /opt/venv, from the wheels in the build context only.
FROM ${BASE_IMAGE} AS deps
LABEL sm-text-pipeline.stage=deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    && python3 -m venv /opt/venv
COPY requirements/lock.txt /tmp/requirements/lock.txt
COPY wheels/ /tmp/wheels/
# --require-hashes also makes pip refuse a dependency that the lock does not list. Byte-compiled
# below, once the venv holds only what the runtime keeps (--no-compile here).
RUN /opt/venv/bin/pip install -q --no-index --find-links /tmp/wheels --only-binary :all: \
        --no-compile --require-hashes -r /tmp/requirements/lock.txt \
    # Runtime needs neither pip nor setuptools (ensurepip's old copies only draw scanner findings).
    && /opt/venv/bin/python -m pip uninstall -y -q setuptools pip \
    # Packages' own test suites are not needed to serve (numpy.testing stays: importing scipy
    # touches every public numpy submodule).
    && find /opt/venv/lib/python3.11/site-packages -depth -type d \
        \( -name tests -o -path '*/nltk/test' -o -path '*/joblib/test' \
           -o -path '*/google/protobuf/testdata' \) -exec rm -rf {} + \
    # Only compiling or type-checking against these packages reads their C/C++/Cython sources,
    # headers and type stubs (~4.6 MB, mostly numpy's and scipy's).
    && find /opt/venv/lib/python3.11/site-packages -type f \( -name '*.pyi' -o -name '*.pxd' \
        -o -name '*.pyx' -o -name '*.pxi' -o -name '*.c' -o -name '*.cpp' -o -name '*.h' \
        -o -name '*.hpp' \) -delete \
    # auditwheel vendors the same libgfortran build into numpy.libs and scipy.libs (2.8 MB): a
    # byte-identical copy becomes a symlink to numpy's (same soname: the loader maps it once
    # anyway). Shared objects are otherwise left as shipped: strip(1) broke OpenBLAS before.
    && cd /opt/venv/lib/python3.11/site-packages \
    && for lib in scipy.libs/* scikit_learn.libs/*; do \
        twin=numpy.libs/${lib#*/}; \
        if [ -f "$lib" ] && [ ! -L "$lib" ] && [ -f "$twin" ] && cmp -s "$lib" "$twin"; then \
            ln -sf "../$twin" "$lib"; fi; done \
    # The container never writes bytecode (PYTHONDONTWRITEBYTECODE, read-only root file systems):
    # every module is compiled here, by the image's own interpreter. unchecked-hash .pyc are used
    # whatever the sources' mtimes (a build that normalises timestamps, e.g. BuildKit's
    # rewrite-timestamp, would otherwise leave timestamp-checked .pyc stale: each start would
    # compile from source). https://docs.python.org/3.11/library/compileall.html
    && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash . \
    && rm -rf /tmp/wheels /tmp/requirements /root/.cache

# ---------------------------------------------------------------------------------------------
# The project itself: a wheel built offline with the locked setuptools (no build isolation),
# installed without dependencies into a staging root so the final stage copies only its files.
FROM deps AS project
LABEL sm-text-pipeline.stage=project
# A C compiler for serving/_wordscan.c, in this throw-away stage only (the runtime stage checks
# that it has none). The python image has the Python headers; Debian's python3 needs
# python3-dev for them.
ARG DEBIAN_FRONTEND=noninteractive
RUN headers=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])') \
    && apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends gcc libc6-dev \
        $([ -f "$headers/Python.h" ] || echo python3-dev) >/dev/null \
    && rm -rf /var/lib/apt/lists/*
COPY requirements/build-lock.txt /tmp/requirements/build-lock.txt
COPY wheels/setuptools-*.whl /tmp/wheels/
RUN python3 -m venv /tmp/tools \
    && /tmp/tools/bin/pip install -q --no-index --find-links /tmp/wheels --only-binary :all: \
        --require-hashes -r /tmp/requirements/build-lock.txt
# requirements/nodeps.txt: installed without their dependencies (sagemaker-inference would pull
# boto3, psutil and retrying; the modules serving imports need none of them). Its sdist is built
# into a wheel here, offline, with the locked setuptools.
COPY requirements/nodeps.txt /tmp/requirements/nodeps.txt
COPY wheels/six-*.whl wheels/sagemaker_inference-*.tar.gz /tmp/wheels/
RUN /tmp/tools/bin/pip wheel -q --no-index --find-links /tmp/wheels --no-deps --no-build-isolation \
        --require-hashes -r /tmp/requirements/nodeps.txt -w /tmp/dist-nodeps \
    && /tmp/tools/bin/pip --python /opt/venv/bin/python install -q --no-index --no-deps \
        --no-compile --no-warn-script-location --root /staging /tmp/dist-nodeps/*.whl
COPY pyproject.toml README.m[d] /tmp/src/
COPY serving/ /tmp/src/serving/
RUN cd /tmp/src \
    # pyproject.toml names README.md as the long description; tolerate its absence.
    && { [ -f README.md ] || : > README.md; } \
    && /tmp/tools/bin/pip wheel -q --no-index --no-deps --no-build-isolation -w /tmp/dist . \
    && /tmp/tools/bin/pip --python /opt/venv/bin/python install -q --no-index --no-deps \
        --no-compile --no-warn-script-location --root /staging /tmp/dist/*.whl \
    && test -d /staging/opt/venv/lib/python3.11/site-packages/serving \
    # pip builds the extension as optional: here it must be there.
    && ls /staging/opt/venv/lib/python3.11/site-packages/serving/_wordscan.*.so \
    # Compiled as the deps stage's packages are (unchecked-hash), with the paths they run from.
    && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        -s /staging -p / /staging/opt/venv/lib/python3.11/site-packages

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NLTK_DATA=/usr/local/share/nltk_data \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVING_HOST=0.0.0.0
# nginx (Debian's package: the binary, its config files and iproute2) buffers every request in
# front of gunicorn's sync workers. The configuration is generated at start-up into a temporary
# directory (serving/nginx_conf.py); the package's own /etc/nginx files are not used.
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends nginx >/dev/null \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/log/apt/* \
        /var/log/dpkg.log /etc/nginx/sites-enabled/* /var/www/html \
    && nginx -v
# An unprivileged account for `docker run --user 1000:1000` (SageMaker itself runs as root).
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/app --shell /usr/sbin/nologin app
COPY --from=nltk-data /nltk_data/ /usr/local/share/nltk_data/
COPY --from=deps /opt/venv/ /opt/venv/
COPY --from=project /staging/ /
COPY container/entrypoint.sh /usr/local/bin/sm-entrypoint
# Fail the build, not the endpoint: the runtime imports, WordNet, and the entry point, as root
# and as the unprivileged user. PYTHONDONTWRITEBYTECODE keeps these checks from writing .pyc.
RUN chmod 0755 /usr/local/bin/sm-entrypoint \
    && python -c "import serving._wordscan, serving.serve, serving.train, numpy, scipy, sklearn, nltk, flask, gunicorn, orjson, google.protobuf, tqdm, sagemaker_inference.encoder" \
    && ! python -c "import boto3" 2>/dev/null \
    && python -c "from nltk.corpus import wordnet as wn, stopwords; from nltk.stem import WordNetLemmatizer as L; v = wn.get_version(); assert v == '3.0', v; r = L().lemmatize('cars'); assert r == 'car', r; assert len(stopwords.words('english')) == 179" \
    && setpriv --reuid 1000 --regid 1000 --clear-groups \
        python -c "import serving, sklearn; from nltk.stem import WordNetLemmatizer as L; assert L().lemmatize('geese') == 'goose'" \
    && sm-entrypoint --help >/dev/null \
    && python -m serving.front_end \
    && setpriv --reuid 1000 --regid 1000 --clear-groups python -m serving.front_end \
    # Every module `serve` and `train` import comes from a .pyc ("code object from X.py": one
    # compiled from source at each start).
    && ! python -v -c "import serving.serve, serving.app, serving.train" 2>&1 \
        | grep -E "^# code object from [^']*[.]py\$" \
    && for tool in gcc cc c++ clang make; do ! command -v "$tool" >/dev/null || exit 1; done \
    && rm -rf /root/.cache /tmp/*

# Declared late: a new commit then only re-runs the LABEL step, not the layers above.
ARG GIT_SHA=unknown
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      org.opencontainers.image.title=sm-text-pipeline \
      org.opencontainers.image.description="Bring-your-own SageMaker container for news text" \
      org.opencontainers.image.licenses=Apache-2.0 \
      org.opencontainers.image.revision=${GIT_SHA}
EXPOSE 8080
# For local runs (SageMaker does its own GET /ping). No curl in the image: python asks.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ping' % (os.environ.get('SAGEMAKER_BIND_TO_PORT') or '8080'), timeout=2)"]
ENTRYPOINT ["/usr/local/bin/sm-entrypoint"]
# No default command: the entry point trains when a SageMaker training layout is mounted and
# otherwise prints its usage and exits 2 (an empty CMD also drops the base image's `python3`).
CMD []
