"""Local fakes of the SaaS APIs the product talks to, speaking their real wire protocols."""
