-- The call explorer (GET /calls/{call_id}) reads a call's provider requests by its row id.
CREATE INDEX provider_requests_by_call ON provider_requests (call) WHERE call IS NOT NULL;
