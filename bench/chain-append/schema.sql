-- Design measurements for the audit-api hash chain (issue 18): what a per-company chain appended
-- inside the inserting transaction costs, before the service is changed. A stand-in for the
-- auditevents table (partitioned, the same kinds of indexes), one head row per chain, and the
-- append variants bench/chain-append/run.sh times with pgbench. Not used by the service.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE ev (
  id bigserial, ts timestamptz NOT NULL, company bigint, username text, message text, status text,
  data jsonb, chain_seq bigint, prev_hash bytea, row_hash bytea, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
CREATE TABLE ev_2026_11 PARTITION OF ev FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
CREATE TABLE ev_2026_12 PARTITION OF ev FOR VALUES FROM ('2026-12-01') TO ('2027-01-01');
CREATE INDEX ON ev (ts DESC, id DESC);
CREATE INDEX ON ev (company, ts DESC, id DESC);
CREATE INDEX ON ev (username, ts DESC, id DESC);
CREATE INDEX ON ev USING gin (message gin_trgm_ops);
CREATE TABLE chains (chain text PRIMARY KEY, head_seq bigint NOT NULL, head_hash bytea NOT NULL);

-- Row lock on the head (upsert): lock, hash, insert, move the head; one statement.
CREATE FUNCTION append(p_ts timestamptz, p_company bigint, p_user text, p_message text, p_status text, p_data text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  k text := coalesce(p_company::text, '-');
  h record; v_id bigint; canon text; d jsonb := p_data::jsonb; hsh bytea;
BEGIN
  INSERT INTO chains VALUES (k, 0, '\x') ON CONFLICT (chain) DO UPDATE SET chain = EXCLUDED.chain
    RETURNING head_seq, head_hash INTO h;
  v_id := nextval('ev_id_seq');
  canon := 'v1' || '|' || v_id || '|' || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
     || '|' || coalesce(p_company::text,'') || '|' || octet_length(coalesce(p_user,'')) || ':' || coalesce(p_user,'')
     || '|' || octet_length(coalesce(p_message,'')) || ':' || coalesce(p_message,'') || '|' || p_status
     || '|' || coalesce(d::text, '');
  hsh := sha256(h.head_hash || convert_to(canon, 'UTF8'));
  INSERT INTO ev (id, ts, company, username, message, status, data, chain_seq, prev_hash, row_hash)
    VALUES (v_id, p_ts, p_company, p_user, p_message, p_status, d, h.head_seq + 1, h.head_hash, hsh);
  UPDATE chains SET head_seq = h.head_seq + 1, head_hash = hsh WHERE chain = k;
  RETURN v_id;
END $$;

-- The same under a transaction-scoped advisory lock on the chain.
CREATE FUNCTION append_adv(p_ts timestamptz, p_company bigint, p_user text, p_message text, p_status text, p_data text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  k text := coalesce(p_company::text, '-');
  h record; v_id bigint; canon text; d jsonb := p_data::jsonb; hsh bytea;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(k, 17));
  SELECT head_seq, head_hash INTO h FROM chains WHERE chain = k;
  IF NOT FOUND THEN INSERT INTO chains VALUES (k, 0, '\x'); h := ROW(0::bigint, '\x'::bytea); END IF;
  v_id := nextval('ev_id_seq');
  canon := 'v1|' || v_id || '|' || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
     || '|' || coalesce(p_company::text,'') || '|' || coalesce(p_user,'') || '|' || coalesce(p_message,'') || '|' || p_status || '|' || coalesce(d::text, '');
  hsh := sha256(h.head_hash || convert_to(canon, 'UTF8'));
  INSERT INTO ev (id, ts, company, username, message, status, data, chain_seq, prev_hash, row_hash)
    VALUES (v_id, p_ts, p_company, p_user, p_message, p_status, d, h.head_seq + 1, h.head_hash, hsh);
  UPDATE chains SET head_seq = h.head_seq + 1, head_hash = hsh WHERE chain = k;
  RETURN v_id;
END $$;

-- n events of one chain in one transaction, row by row (in-process grouping of concurrent creates).
CREATE FUNCTION append_many(p_company bigint, n int)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  k text := coalesce(p_company::text, '-');
  seq bigint; prev bytea; v_id bigint; canon text; d jsonb := '{"ip": "192.168.1.10", "browser": "Chrome"}'::jsonb; hsh bytea; ts timestamptz := now();
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(k, 17));
  SELECT head_seq, head_hash INTO seq, prev FROM chains WHERE chain = k;
  FOR i IN 1..n LOOP
    v_id := nextval('ev_id_seq');
    canon := 'v1|' || v_id || '|' || to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '|' || k || '|jdoe|User logged in successfully|Success|' || d::text;
    hsh := sha256(prev || convert_to(canon, 'UTF8'));
    seq := seq + 1;
    INSERT INTO ev (id, ts, company, username, message, status, data, chain_seq, prev_hash, row_hash)
      VALUES (v_id, ts, p_company, 'jdoe', 'User logged in successfully', 'Success', d, seq, prev, hsh);
    prev := hsh;
  END LOOP;
  UPDATE chains SET head_seq = seq, head_hash = prev WHERE chain = k;
  RETURN seq;
END $$;

-- n events of one chain in one transaction: hashes in a loop, one set-based INSERT.
CREATE FUNCTION append_set(p_company bigint, n int)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  k text := coalesce(p_company::text, '-');
  seq bigint; prev bytea; d text := ('{"ip": "192.168.1.10", "browser": "Chrome"}'::jsonb)::text; ts timestamptz := now();
  ids bigint[]; seqs bigint[] := '{}'; prevs bytea[] := '{}'; hashes bytea[] := '{}'; hsh bytea; tstext text;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(k, 17));
  SELECT head_seq, head_hash INTO seq, prev FROM chains WHERE chain = k;
  SELECT array_agg(nextval('ev_id_seq')) INTO ids FROM generate_series(1, n);
  tstext := to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
  FOR i IN 1..n LOOP
    hsh := sha256(prev || convert_to('v1|' || ids[i] || '|' || tstext || '|' || k || '|jdoe|User logged in successfully|Success|' || d, 'UTF8'));
    seq := seq + 1;
    seqs := seqs || seq; prevs := prevs || prev; hashes := hashes || hsh;
    prev := hsh;
  END LOOP;
  INSERT INTO ev (id, ts, company, username, message, status, data, chain_seq, prev_hash, row_hash)
    SELECT u.id, ts, p_company, 'jdoe', 'User logged in successfully', 'Success', d::jsonb, u.s, u.p, u.h
    FROM unnest(ids, seqs, prevs, hashes) AS u(id, s, p, h);
  UPDATE chains SET head_seq = seq, head_hash = prev WHERE chain = k;
  RETURN seq;
END $$;
