-- The seed's schema, with timestamptz event times and the indexes the search needs.
-- Partitions are created by the service (`audit-api migrate` / `maintain`), not here, so
-- that "which months exist" has one owner.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE auditfunctionalities (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name varchar(100) NOT NULL UNIQUE
);

CREATE TABLE auditeventtypes (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    functionalityid integer NOT NULL REFERENCES auditfunctionalities (id),
    name varchar(100) NOT NULL,
    CONSTRAINT uq_functionality_event UNIQUE (functionalityid, name)
);

CREATE SEQUENCE auditevents_id_seq AS bigint;

-- No DEFAULT partition: it would forbid DETACH ... CONCURRENTLY, and an event for a month
-- without a partition is an input error the API reports, not a row to park somewhere.
CREATE TABLE auditevents (
    id bigint NOT NULL DEFAULT nextval('auditevents_id_seq'),
    eventtimestamp timestamptz NOT NULL,
    functionalityid integer NOT NULL REFERENCES auditfunctionalities (id),
    eventtypeid integer NOT NULL REFERENCES auditeventtypes (id),
    storelocationid bigint,
    companyid bigint,
    username varchar(20),
    message text,
    status varchar(20) NOT NULL CONSTRAINT auditevents_status_check CHECK (status IN ('Success', 'Failed')),
    additionaldata jsonb,
    PRIMARY KEY (id, eventtimestamp)
) PARTITION BY RANGE (eventtimestamp);
ALTER SEQUENCE auditevents_id_seq OWNED BY auditevents.id;

-- Every search orders by (eventtimestamp, id) descending and pages by keyset on that pair;
-- each filter gets an index that leads with it and then serves the same order.
CREATE INDEX auditevents_time_idx ON auditevents (eventtimestamp DESC, id DESC);
CREATE INDEX auditevents_company_time_idx ON auditevents (companyid, eventtimestamp DESC, id DESC);
CREATE INDEX auditevents_store_time_idx ON auditevents (storelocationid, eventtimestamp DESC, id DESC);
CREATE INDEX auditevents_user_time_idx ON auditevents (username, eventtimestamp DESC, id DESC);
CREATE INDEX auditevents_functionality_time_idx ON auditevents (functionalityid, eventtimestamp DESC, id DESC);
CREATE INDEX auditevents_message_trgm_idx ON auditevents USING gin (message gin_trgm_ops);

-- Events past the retention window, with when they were moved. The key makes a repeated
-- archival of the same partition a no-op rather than a duplicate.
CREATE TABLE auditevents_archival (
    id bigint NOT NULL,
    eventtimestamp timestamptz NOT NULL,
    functionalityid integer NOT NULL,
    eventtypeid integer NOT NULL,
    storelocationid bigint,
    companyid bigint,
    username varchar(20),
    message text,
    status varchar(20) NOT NULL,
    additionaldata jsonb,
    archivedat timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, eventtimestamp)
);

INSERT INTO auditfunctionalities (name) VALUES ('Authenticate'), ('Price Management');
-- In the seed's order: ids (and so the event-type listing) follow it.
INSERT INTO auditeventtypes (functionalityid, name)
SELECT f.id, t.name
FROM (VALUES
    (1, 'Authenticate', 'Login'),
    (2, 'Authenticate', 'Logout'),
    (3, 'Authenticate', 'Sign up'),
    (4, 'Authenticate', 'Reset Password'),
    (5, 'Price Management', 'Item updated'),
    (6, 'Price Management', 'Item updates picked up by publisher'),
    (7, 'Price Management', 'Item updates pushed to rabbit MQ'),
    (8, 'Price Management', 'Item updates acknowledgement received')
) AS t (ord, functionality, name)
JOIN auditfunctionalities f ON f.name = t.functionality
ORDER BY t.ord;
