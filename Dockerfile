# notifier engine image: `docker compose up` builds it (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md constraints.txt ./
COPY notifier ./notifier
RUN pip install -c constraints.txt .

COPY templates ./templates
COPY locales ./locales
COPY config ./config
RUN notifier templates compile

RUN useradd --system --home /app notifier && chown -R notifier /app
USER notifier

ENTRYPOINT ["notifier"]
CMD ["run"]
