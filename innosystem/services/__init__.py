"""Business rules shared by the API, the workers and the CLI. Handlers and actors stay thin."""
