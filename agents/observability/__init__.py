"""What a running worker tells the people who operate it: its counts and distributions
(:mod:`.stats`), the Prometheus metrics made from them (:mod:`.metrics`), the HTTP endpoints
serving those with health and readiness (:mod:`.endpoints`), and the live line in its log
(:mod:`.progress`). docs/operations.md says what each figure means."""
