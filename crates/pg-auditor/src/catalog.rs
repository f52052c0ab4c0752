//! The catalog read: one statement per part (a few audited schemas, [`catalog_parts`]) that
//! returns every table, column, index, constraint, trigger and function of the part as one
//! JSON document.
//!
//! The original ran `information_schema` queries per table (thousands of round trips on a
//! large database, most of its run time). This reads `pg_catalog` directly, once per part, and takes no
//! table locks (no `pg_relation_size`, no `pg_partition_tree`); per-table reads happen later,
//! each under a savepoint.
//!
//! Identifiers come back quoted by PostgreSQL (`pg_catalog.format('%I.%I')`,
//! `pg_catalog.quote_ident`): the SQL built from them later never quotes anything itself.
//! A table another session holds ACCESS EXCLUSIVE (a migration, `VACUUM FULL`) is read from
//! the catalog rows alone ([`LOCKED_RELATIONS_SQL`]): deparsing its defaults, indexes or check
//! constraints would wait for it, and fail the whole statement at `lock_timeout`.

use serde::{Deserialize, Serialize};

/// Relations of this database that another session holds, or waits for, in ACCESS EXCLUSIVE
/// mode, with the holders' pids. A waiter counts too: PostgreSQL queues later lock requests
/// behind it.
pub const LOCKED_RELATIONS_SQL: &str = r#"
SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
  'oid', l.relation::int8, 'pid', l.pid, 'granted', l.granted)), '[]')::text
FROM pg_catalog.pg_locks l
WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
  AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                    WHERE d.datname = pg_catalog.current_database())
  AND l.pid <> pg_catalog.pg_backend_pid()
"#;

/// One row of [`LOCKED_RELATIONS_SQL`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LockedRelation {
    pub oid: u32,
    pub pid: i32,
    pub granted: bool,
}

/// The schemas an audit reads (`$1` to include, empty for all but the system ones; `$2` to
/// exclude), the first CTE of [`CHUNKS_SQL`] and [`CATALOG_SQL`]: the parts are cut and read
/// from the same list.
macro_rules! audited_schema_cte {
    () => {
        r#"
WITH audited_schema AS (
  SELECT n.oid, n.nspname
  FROM pg_catalog.pg_namespace n
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
    AND (pg_catalog.cardinality($1::text[]) = 0 OR n.nspname = ANY ($1::text[]))
    AND n.nspname <> ALL ($2::text[])
),
"#
    };
}

/// The audited schemas cut into chunks of at most `$3` tables each, in the order the catalog
/// statement sorts them (`$1`, `$2` as in [`CATALOG_SQL`]): per chunk the schema, the name of
/// its first table (C order, as the catalog sorts names; `NULL` for a schema without tables)
/// and its number of tables. The catalog is then read a few chunks at a time
/// ([`catalog_parts`]): one statement for a 100,000-table database returned a single JSON
/// value of hundreds of megabytes, and one statement for a schema of 100,000 tables would too.
pub const CHUNKS_SQL: &str = concat!(
    audited_schema_cte!(),
    r#"numbered AS (
  SELECT c.relnamespace, c.relname,
         (pg_catalog.row_number() OVER (PARTITION BY c.relnamespace ORDER BY c.relname) - 1)
           / $3::int8 AS chunk
  FROM pg_catalog.pg_class c JOIN audited_schema s ON s.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p')
)
SELECT s.nspname::text, pg_catalog.min(t.relname::text COLLATE "C"), pg_catalog.count(t.relname)
FROM audited_schema s LEFT JOIN numbered t ON t.relnamespace = s.oid
GROUP BY s.nspname, t.chunk
ORDER BY s.nspname, t.chunk
"#
);

/// One row of [`CHUNKS_SQL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogChunk {
    pub schema: String,
    pub first_table: Option<String>,
    pub tables: i64,
}

/// What one catalog statement reads: whole schemas, or one range of a large schema's tables
/// (`from` inclusive, `to` exclusive, by name in C order; the schema's functions go with its
/// first range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogPart {
    pub schemas: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Tables per catalog statement, about. Measured on 20,000 tables in 10 schemas: one
/// statement per schema 9.5-10.0 s, per 5 schemas 11.2-12.0 s, one for all 10.0-10.7 s and
/// 40 MiB more; small schemas are grouped so that a database of many tiny schemas does not pay
/// one statement each, and a larger schema is read in ranges of this many tables.
pub const CATALOG_TABLES_PER_STATEMENT: i64 = 2_000;

/// The catalog statements to run, in order: consecutive small schemas grouped up to
/// `per_statement` tables; a schema cut into several chunks ([`CHUNKS_SQL`]) read one range
/// per statement. The parts concatenate as one statement would have sorted them.
pub fn catalog_parts(chunks: &[CatalogChunk], per_statement: i64) -> Vec<CatalogPart> {
    let mut parts: Vec<CatalogPart> = Vec::new();
    let mut tables = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        // The neighbouring chunks of the same schema, if it was cut.
        let of_schema = |other: Option<&CatalogChunk>| {
            other
                .filter(|o| o.schema == chunk.schema)
                .map(|o| o.first_table.clone())
        };
        let previous = of_schema(i.checked_sub(1).and_then(|p| chunks.get(p)));
        let next = of_schema(chunks.get(i + 1));
        if previous.is_some() || next.is_some() {
            parts.push(CatalogPart {
                schemas: vec![chunk.schema.clone()],
                from: chunk.first_table.clone().filter(|_| previous.is_some()),
                to: next.flatten(),
            });
            continue;
        }
        match parts.last_mut() {
            Some(part)
                if part.from.is_none()
                    && part.to.is_none()
                    && tables + chunk.tables <= per_statement =>
            {
                part.schemas.push(chunk.schema.clone());
                tables += chunk.tables;
            }
            _ => {
                parts.push(CatalogPart {
                    schemas: vec![chunk.schema.clone()],
                    from: None,
                    to: None,
                });
                tables = chunk.tables;
            }
        }
    }
    parts
}

/// The catalog statement. `$1`: schemas to include (empty = all but the system ones),
/// `$2`: schemas to exclude, `$3`: oids of relations another session holds (or waits for)
/// ACCESS EXCLUSIVE, whose defaults and index definitions are not deparsed: deparsing waits
/// for that lock, and one waiting table would fail the whole statement. `$4`, `$5`: the range
/// of table names to read (`NULL`: unbounded; see [`CatalogPart`]); `$6`: only these tables
/// (`NULL`: all). Functions are read only with the start of a schema and no table list.
///
/// Every function and catalog is schema-qualified and the session runs with `search_path =
/// pg_catalog, pg_temp`: a `public.format(text, name, name)` planted by a role that can
/// create in `public` must never be the function that quotes identifiers.
pub const CATALOG_SQL: &str = concat!(
    audited_schema_cte!(),
    r#"audited_table AS (
  SELECT c.oid, s.nspname, c.relname, c.relkind, c.relispartition, c.relowner,
         c.relhasindex, c.relhasrules, c.relhastriggers, c.reltuples, c.relpages
  FROM pg_catalog.pg_class c JOIN audited_schema s ON s.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p')
    AND ($4::text IS NULL OR c.relname::text COLLATE "C" >= $4::text)
    AND ($5::text IS NULL OR c.relname::text COLLATE "C" < $5::text)
    AND ($6::text[] IS NULL OR c.relname = ANY ($6::text[]::name[]))
),
-- Leaves of each partitioned table, through pg_inherits (pg_partition_tree would lock them).
partition_leaf AS (
  WITH RECURSIVE tree(root, relid) AS (
    SELECT t.oid, i.inhrelid FROM audited_table t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.oid
    WHERE t.relkind = 'p'
    UNION ALL
    SELECT tree.root, i.inhrelid FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.relid
  )
  SELECT tree.root, tree.relid FROM tree JOIN pg_catalog.pg_class c ON c.oid = tree.relid
  WHERE c.relkind <> 'p'
),
true_type AS (
  SELECT a.attrelid, a.attnum, a.attname, a.attnotnull, a.atthasdef,
         CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END AS typid,
         CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod,
         t.typtype = 'd' AND t.typnotnull AS domain_not_null
  FROM pg_catalog.pg_attribute a
  JOIN audited_table c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  WHERE a.attnum > 0 AND NOT a.attisdropped
)
SELECT pg_catalog.json_build_object(
  'database_info', pg_catalog.json_build_object(
    'database_name', pg_catalog.current_database(),
    'current_user', current_user,
    'session_user', session_user,
    'postgresql_version', pg_catalog.version(),
    'server_version_num', pg_catalog.current_setting('server_version_num')::int,
    'block_size', pg_catalog.current_setting('block_size')::int),
  'tables', (
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
      'oid', t.oid::int8,
      'schema', t.nspname,
      'table', t.relname,
      'qualified', pg_catalog.format('%I.%I', t.nspname, t.relname),
      'owner', pg_catalog.pg_get_userbyid(t.relowner),
      'has_indexes', t.relhasindex,
      'has_rules', t.relhasrules,
      'has_triggers', t.relhastriggers,
      'is_partitioned', t.relkind = 'p',
      'partition_of', (SELECT pg_catalog.format('%I.%I', pn.nspname, p.relname)
                       FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
                       JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
                       WHERE t.relispartition AND i.inhrelid = t.oid),
      'reltuples', t.reltuples,
      'relpages', t.relpages,
      -- What pg_stat_all_tables.n_live_tup reads, without the view: its GROUP BY over every
      -- relation made each statement (one per schema) aggregate the whole database.
      'live_tuples_hint', pg_catalog.pg_stat_get_live_tuples(t.oid),
      'leaves', (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('oid', l.relid::int8, 'reltuples', lc.reltuples,
                                                   'relpages', lc.relpages))
                 FROM partition_leaf l JOIN pg_catalog.pg_class lc ON lc.oid = l.relid
                 WHERE l.root = t.oid)
    ) ORDER BY t.nspname, t.relname), '[]') FROM audited_table t),
  -- One array per column, in CatalogColumn's field order (serde reads a struct from an
  -- array): the column list is most of the document, and its keys were most of the list.
  'columns', (
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(
      a.attrelid::int8,
      a.attname,
      pg_catalog.quote_ident(a.attname),
      CASE
          WHEN ty.typelem <> 0 AND ty.typlen = -1 THEN 'ARRAY'
          WHEN tn.nspname = 'pg_catalog' THEN pg_catalog.format_type(a.typid, NULL)
          ELSE 'USER-DEFINED' END,
      CASE WHEN a.attnotnull OR a.domain_not_null THEN 'NO' ELSE 'YES' END,
      CASE WHEN a.attrelid = ANY ($3::int8[]::oid[]) THEN NULL
           ELSE pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
      information_schema._pg_char_max_length(a.typid, a.typmod),
      information_schema._pg_numeric_precision(a.typid, a.typmod),
      information_schema._pg_numeric_scale(a.typid, a.typmod)
    ) ORDER BY a.attrelid, a.attnum), '[]')
    FROM true_type a
    JOIN pg_catalog.pg_type ty ON ty.oid = a.typid
    JOIN pg_catalog.pg_namespace tn ON tn.oid = ty.typnamespace
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum),
  'indexes', (
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
      'schema', t.nspname,
      'table_name', t.relname,
      'index_name', i.relname,
      'definition', CASE WHEN x.indrelid = ANY ($3::int8[]::oid[]) OR x.indexrelid = ANY ($3::int8[]::oid[])
                     THEN NULL ELSE pg_catalog.pg_get_indexdef(i.oid) END,
      'is_unique', x.indisunique,
      'is_primary', x.indisprimary) ORDER BY t.nspname, t.relname, i.relname), '[]')
    FROM pg_catalog.pg_index x JOIN audited_table t ON t.oid = x.indrelid JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid),
  'foreign_keys', (
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
      'schema', t.nspname,
      'table_name', t.relname,
      'constraint_name', con.conname,
      'column_name', a.attname,
      'ref_schema', rn.nspname,
      'ref_table', r.relname,
      'ref_column', ra.attname,
      'delete_rule', (CASE con.confdeltype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
                       WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END),
      'update_rule', (CASE con.confupdtype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
                       WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END)) ORDER BY t.nspname, t.relname, con.conname, k.ord), '[]')
    FROM pg_catalog.pg_constraint con
    JOIN audited_table t ON t.oid = con.conrelid
    JOIN pg_catalog.pg_class r ON r.oid = con.confrelid
    JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
    -- Multi-argument unnest is SQL syntax (ROWS FROM), not a function to qualify.
    CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, refnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
    JOIN pg_catalog.pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = k.refnum
    WHERE con.contype = 'f' AND con.conparentid = 0),
  'check_constraints', (
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
      'schema', t.nspname,
      'table_name', t.relname,
      'constraint_name', con.conname,
      -- Deparsing a check opens its table: it would wait for a lock another session holds.
      'check_clause', CASE WHEN con.conrelid = ANY ($3::int8[]::oid[]) THEN NULL
                      ELSE pg_catalog.regexp_replace(pg_catalog.pg_get_constraintdef(con.oid), '^CHECK ', '') END
    ) ORDER BY t.nspname, t.relname, con.conname), '[]')
    FROM pg_catalog.pg_constraint con JOIN audited_table t ON t.oid = con.conrelid
    WHERE con.contype = 'c'),
  'unique_constraints', (
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
      'schema', t.nspname,
      'table_name', t.relname,
      'constraint_name', con.conname,
      'columns', (SELECT pg_catalog.json_agg(a.attname ORDER BY k.ord)
                  FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum)
    ) ORDER BY t.nspname, t.relname, con.conname), '[]')
    FROM pg_catalog.pg_constraint con JOIN audited_table t ON t.oid = con.conrelid
    WHERE con.contype = 'u'),
  'triggers', (
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
      'schema', t.nspname,
      'table_name', t.relname,
      'table_oid', t.oid::int8,
      'trigger_name', tg.tgname,
      'timing', CASE WHEN tg.tgtype & 2 <> 0 THEN 'BEFORE'
                     WHEN tg.tgtype & 64 <> 0 THEN 'INSTEAD OF' ELSE 'AFTER' END,
      'events', pg_catalog.array_remove(ARRAY[
                  CASE WHEN tg.tgtype & 4 <> 0 THEN 'INSERT' END,
                  CASE WHEN tg.tgtype & 16 <> 0 THEN 'UPDATE' END,
                  CASE WHEN tg.tgtype & 8 <> 0 THEN 'DELETE' END,
                  CASE WHEN tg.tgtype & 32 <> 0 THEN 'TRUNCATE' END], NULL),
      'level', CASE WHEN tg.tgtype & 1 <> 0 THEN 'ROW' ELSE 'STATEMENT' END,
      'function_name', p.proname,
      'function_schema', pn.nspname,
      'is_enabled', tg.tgenabled <> 'D'
    ) ORDER BY t.nspname, t.relname, tg.tgname), '[]')
    FROM pg_catalog.pg_trigger tg
    JOIN audited_table t ON t.oid = tg.tgrelid
    JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid
    JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
    WHERE NOT tg.tgisinternal),
  'functions', (
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
      'schema', s.nspname,
      'function_name', p.proname,
      'argument_types', pg_catalog.pg_get_function_identity_arguments(p.oid),
      'return_type', pg_catalog.pg_get_function_result(p.oid),
      'language', l.lanname,
      'security_definer', p.prosecdef,
      'owner', pg_catalog.pg_get_userbyid(p.proowner),
      'kind', CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END
    ) ORDER BY s.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)), '[]')
    FROM pg_catalog.pg_proc p
    JOIN audited_schema s ON s.oid = p.pronamespace
    JOIN pg_catalog.pg_language l ON l.oid = p.prolang
    WHERE p.prokind IN ('f', 'p') AND $4::text IS NULL AND $6::text[] IS NULL)
)::text
"#
);

/// `pg_stats` of the audit columns of the tables whose figures are estimated: `$1` table
/// oids, `$2` column names. Separate from [`CATALOG_SQL`] because the `pg_stats` view is
/// slow to join in bulk (~0.1 ms per column) and only the few large tables need it.
pub const COLUMN_STATISTICS_SQL: &str = r#"
SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
  'table_oid', c.oid::int8,
  'column_name', s.attname,
  'null_frac', s.null_frac,
  'n_distinct', s.n_distinct,
  'most_common_vals', s.most_common_vals::text,
  'histogram_bounds', s.histogram_bounds::text)), '[]')::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
WHERE c.oid = ANY ($1::int8[]::oid[]) AND s.attname = ANY ($2::text[]) AND NOT s.inherited
"#;

/// What [`CATALOG_SQL`] returns.
#[derive(Debug, Clone, Deserialize)]
pub struct Catalog {
    pub database_info: DatabaseInfo,
    pub tables: Vec<CatalogTable>,
    pub columns: Vec<CatalogColumn>,
    #[serde(flatten)]
    pub objects: SchemaObjects,
}

impl Catalog {
    /// Appends the catalog of later schemas (read in [`CHUNKS_SQL`]'s order, so the lists
    /// stay sorted as one statement would have sorted them).
    pub fn append(&mut self, mut later: Catalog) {
        self.tables.append(&mut later.tables);
        self.columns.append(&mut later.columns);
        self.objects.append(later.objects);
    }
}

/// Indexes, constraints, triggers and functions: copied into the report as read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchemaObjects {
    pub indexes: Vec<IndexInfo>,
    pub foreign_keys: Vec<ForeignKey>,
    pub check_constraints: Vec<CheckConstraint>,
    pub unique_constraints: Vec<UniqueConstraint>,
    pub triggers: Vec<TriggerInfo>,
    pub functions: Vec<FunctionInfo>,
}

impl SchemaObjects {
    /// Appends the objects of later schemas.
    pub fn append(&mut self, mut later: SchemaObjects) {
        self.indexes.append(&mut later.indexes);
        self.foreign_keys.append(&mut later.foreign_keys);
        self.check_constraints.append(&mut later.check_constraints);
        self.unique_constraints
            .append(&mut later.unique_constraints);
        self.triggers.append(&mut later.triggers);
        self.functions.append(&mut later.functions);
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub database_name: String,
    pub current_user: String,
    pub session_user: String,
    pub postgresql_version: String,
    pub server_version_num: i64,
    #[serde(skip_serializing)]
    pub block_size: i64,
}

/// One ordinary or partitioned table, as the catalog describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogTable {
    pub oid: u32,
    pub schema: String,
    pub table: String,
    /// `schema.table`, quoted by PostgreSQL.
    pub qualified: String,
    pub owner: String,
    pub has_indexes: bool,
    pub has_rules: bool,
    pub has_triggers: bool,
    pub is_partitioned: bool,
    pub partition_of: Option<String>,
    /// -1 until the first VACUUM or ANALYZE: unknown, not empty.
    pub reltuples: f64,
    pub relpages: i64,
    pub live_tuples_hint: Option<i64>,
    /// Leaf partitions of a partitioned table.
    pub leaves: Option<Vec<LeafStatistics>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LeafStatistics {
    pub oid: u32,
    pub reltuples: f64,
    pub relpages: i64,
}

/// A column, with the values `information_schema.columns` would show. The catalog statement
/// sends each as an array of these fields in this order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogColumn {
    #[serde(skip_serializing)]
    pub table_oid: u32,
    pub column_name: String,
    /// The name quoted by PostgreSQL, for building select lists.
    #[serde(skip_serializing)]
    pub quoted: String,
    pub data_type: String,
    pub is_nullable: String,
    pub column_default: Option<String>,
    pub character_maximum_length: Option<i64>,
    pub numeric_precision: Option<i64>,
    pub numeric_scale: Option<i64>,
}

/// `pg_stats` of an audit column: what estimates of creators and creation range rest on.
#[derive(Debug, Clone, Deserialize)]
pub struct ColumnStatistics {
    pub table_oid: u32,
    pub column_name: String,
    pub null_frac: f64,
    pub n_distinct: f64,
    pub most_common_vals: Option<String>,
    pub histogram_bounds: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexInfo {
    pub schema: String,
    pub table_name: String,
    pub index_name: String,
    /// `None` when the table was locked and the definition could not be read.
    pub definition: Option<String>,
    pub is_unique: bool,
    pub is_primary: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForeignKey {
    pub schema: String,
    pub table_name: String,
    pub constraint_name: String,
    pub column_name: String,
    pub ref_schema: String,
    pub ref_table: String,
    pub ref_column: String,
    pub delete_rule: String,
    pub update_rule: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckConstraint {
    pub schema: String,
    pub table_name: String,
    pub constraint_name: String,
    /// `None` for a table another session holds ACCESS EXCLUSIVE (not deparsed).
    pub check_clause: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UniqueConstraint {
    pub schema: String,
    pub table_name: String,
    pub constraint_name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriggerInfo {
    pub schema: String,
    pub table_name: String,
    #[serde(skip_serializing)]
    pub table_oid: u32,
    pub trigger_name: String,
    pub timing: String,
    pub events: Vec<String>,
    pub level: String,
    pub function_name: String,
    pub function_schema: String,
    pub is_enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionInfo {
    pub schema: String,
    pub function_name: String,
    pub argument_types: String,
    pub return_type: Option<String>,
    pub language: String,
    pub security_definer: bool,
    pub owner: String,
    pub kind: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(schema: &str, first: Option<&str>, tables: i64) -> CatalogChunk {
        CatalogChunk {
            schema: schema.to_owned(),
            first_table: first.map(str::to_owned),
            tables,
        }
    }

    fn whole(schemas: &[&str]) -> CatalogPart {
        CatalogPart {
            schemas: schemas.iter().map(|s| (*s).to_owned()).collect(),
            from: None,
            to: None,
        }
    }

    #[test]
    fn schemas_are_grouped_in_order_up_to_the_tables_per_statement() {
        let chunks = [
            chunk("a", Some("t"), 4_000),
            chunk("b", Some("t"), 5_000),
            chunk("c", Some("t"), 2_000),
            chunk("d", Some("t"), 9_000),
            chunk("e", None, 0),
        ];
        assert_eq!(
            catalog_parts(&chunks, 10_000),
            [whole(&["a", "b"]), whole(&["c"]), whole(&["d", "e"])]
        );
        // Every schema alone when the limit is below each (an empty one still read for its
        // functions); none for none.
        assert_eq!(catalog_parts(&chunks, 1).len(), 5);
        assert!(catalog_parts(&[], 10_000).is_empty());
    }

    #[test]
    fn a_large_schema_is_read_in_ranges_of_table_names_and_nothing_joins_a_range() {
        let chunks = [
            chunk("a", Some("x"), 10),
            chunk("big", Some("a_1"), 2_000),
            chunk("big", Some("m_7"), 2_000),
            chunk("big", Some("t_9"), 5),
            chunk("c", Some("y"), 10),
            chunk("d", Some("z"), 10),
        ];
        let range = |from: Option<&str>, to: Option<&str>| CatalogPart {
            schemas: vec!["big".to_owned()],
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
        };
        assert_eq!(
            catalog_parts(&chunks, 2_000),
            [
                whole(&["a"]),
                // The first range from the start (with the schema's functions), the last to
                // the end: every table in exactly one range.
                range(None, Some("m_7")),
                range(Some("m_7"), Some("t_9")),
                range(Some("t_9"), None),
                whole(&["c", "d"]),
            ]
        );
    }
}
