"""The public web pages: a thin front end over the other services' public HTTP APIs."""
