//! Creating an empty kneo-serv 1.2 store (schema version 4) for a restore to load.

/// The DDL of the schema, for `backend`.
pub fn ddl(backend: Backend) -> String {
    let real = match backend {
        Backend::Sqlite => "REAL",
        // kneo-serv widens REAL on Postgres: single precision cannot hold epoch seconds.
        Backend::Postgres => "DOUBLE PRECISION",
    };
    include_str!("schema.sql").replace("@REAL@", real)
}

/// Which kind of database the DDL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::kneo_serv::TABLES;

    #[test]
    fn the_ddl_creates_every_archived_column_in_archive_order() {
        let connection = rusqlite::Connection::open_in_memory().expect("sqlite");
        connection
            .execute_batch(&ddl(Backend::Sqlite))
            .expect("the DDL applies");
        for table in TABLES {
            let mut statement = connection
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{}')",
                    table.name
                ))
                .expect("table info");
            let names: Vec<String> = statement
                .query_map([], |row| row.get(0))
                .expect("columns")
                .collect::<Result<_, _>>()
                .expect("names");
            let expected: Vec<&str> = table.columns.iter().map(|column| column.name).collect();
            assert_eq!(names, expected, "{}", table.name);
        }
        let postgres = ddl(Backend::Postgres);
        assert!(
            postgres.contains("expires_at DOUBLE PRECISION NOT NULL"),
            "{postgres}"
        );
        assert!(!postgres.contains("@REAL@"));
    }
}
