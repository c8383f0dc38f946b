-- Run once by the postgres image, when it initialises an empty data volume
-- (docker-compose.yml mounts this file into /docker-entrypoint-initdb.d/).
-- A database per service, each owned by its own login role, and no CONNECT for anyone else:
-- no service can read another's tables. The passwords are for local compose stacks only.
-- A further charity's advocacy instance gets its own pair, e.g. advocacy_<provider>.

CREATE ROLE intake LOGIN PASSWORD 'intake-dev';
CREATE DATABASE intake OWNER intake;
REVOKE ALL ON DATABASE intake FROM PUBLIC;

CREATE ROLE advocacy_demo LOGIN PASSWORD 'advocacy-demo-dev';
CREATE DATABASE advocacy_demo OWNER advocacy_demo;
REVOKE ALL ON DATABASE advocacy_demo FROM PUBLIC;

CREATE ROLE notifications LOGIN PASSWORD 'notifications-dev';
CREATE DATABASE notifications OWNER notifications;
REVOKE ALL ON DATABASE notifications FROM PUBLIC;
