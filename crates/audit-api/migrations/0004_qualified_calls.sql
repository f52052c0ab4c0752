-- audit_api_append_events runs as the owner (SECURITY DEFINER). It called
-- audit_api_event_canonical_v1(0, ...) unqualified with an int4 literal: a role that may
-- create in this schema could add an overload taking int4 first, an exact match that would
-- be chosen over the bigint original and run as the owner. The call is now qualified with
-- this schema and its literal cast to the declared type, and PUBLIC may no longer create here.
-- The function is re-created from its own stored definition (grants, owner, SECURITY DEFINER
-- and its search_path kept), so the shipped migration 0002 keeps its bytes.
DO $$
DECLARE
    target regprocedure := pg_catalog.to_regprocedure(pg_catalog.format(
        '%I.audit_api_append_events(text[], int[], int[], bigint[], bigint[], text[], text[], '
        'text[], text[])', pg_catalog.current_schema()));
    definition text;
    unqualified constant text := 'audit_api_event_canonical_v1(0, ';
BEGIN
    definition := pg_catalog.pg_get_functiondef(target);
    IF pg_catalog.strpos(definition, unqualified) = 0 THEN
        RAISE EXCEPTION 'audit_api_append_events does not hold the call this migration qualifies';
    END IF;
    EXECUTE pg_catalog.replace(definition, unqualified, pg_catalog.format(
        '%I.audit_api_event_canonical_v1(0::bigint, ', pg_catalog.current_schema()));
    EXECUTE pg_catalog.format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC',
        pg_catalog.current_schema());
END $$;
