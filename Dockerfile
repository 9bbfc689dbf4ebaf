FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    EDITGATE_HOST=0.0.0.0 EDITGATE_PORT=8080 EDITGATE_DATA_DIR=/data

RUN useradd --create-home --uid 10001 editgate && mkdir /data && chown editgate /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY router ./router
COPY providers ./providers
COPY policies ./policies
RUN pip install --no-cache-dir .

USER editgate
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
CMD ["editgate", "serve"]
