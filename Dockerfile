# The Driftwatch app image: web, worker and beat run from it with different commands. Runtime requirements
# only (requirements.txt); the test tools are in requirements-dev.txt.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DATABASE_URL=postgres://build@localhost/build SECRET_KEY=collectstatic python manage.py collectstatic --no-input -v0
RUN useradd --system --uid 10001 driftwatch
# Numeric, so Kubernetes' runAsNonRoot can check it (scripts/image builds the same image without a registry).
USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "dashboard.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
