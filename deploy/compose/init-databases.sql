-- One database per service; btree_gist for tracking's overlap constraint.
CREATE DATABASE projects;
CREATE DATABASE tracking;
CREATE DATABASE reporting;
CREATE DATABASE invoicing;
\c tracking
CREATE EXTENSION IF NOT EXISTS btree_gist;
