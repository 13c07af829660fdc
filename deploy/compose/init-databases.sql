-- One database per service (each service owns its data); btree_gist for
-- tracking's overlap constraint (also created by tracking's first migration).
CREATE DATABASE projects;
CREATE DATABASE tracking;
CREATE DATABASE reporting;
CREATE DATABASE invoicing;
\c tracking
CREATE EXTENSION IF NOT EXISTS btree_gist;
