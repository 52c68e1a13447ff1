"""Apps (the company's applications that send email) and their API keys."""
