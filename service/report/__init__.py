"""Human-readable reports of a job: comparison rows shared by the CLI, and the HTML page."""
