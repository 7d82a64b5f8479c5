// node-postgres through shadow-proxy: parameterized queries (extended
// protocol, unnamed and named prepared statements), simple queries, a
// transaction with a savepoint rolled back to, a rollback, an error, COPY
// both ways (pg-copy-streams, as node applications do COPY).
const { Client } = require('pg');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const { pipeline } = require('stream/promises');
const { Readable, Writable } = require('stream');

async function main() {
  const client = new Client({ connectionString: process.argv[2] });
  await client.connect();
  await client.query('SELECT id, owner, balance, opened FROM accounts WHERE id <= $1 ORDER BY id', [20]);
  await client.query('SELECT count(*), sum(balance) FROM accounts');
  await client.query('UPDATE accounts SET balance = balance + $1 WHERE id = $2', ['5', 3]);
  await client.query('INSERT INTO notes VALUES ($1, $2, $3)', [1, 3, 'first']);
  await client.query('BEGIN');
  await client.query('UPDATE accounts SET balance = balance - 1 WHERE id = $1', [4]);
  await client.query('SAVEPOINT before_note');
  await client.query('INSERT INTO notes VALUES ($1, $2, $3)', [1, 4, 'a duplicate']).catch(() => {});
  await client.query('ROLLBACK TO SAVEPOINT before_note');
  await client.query('INSERT INTO notes VALUES ($1, $2, $3)', [2, 4, 'second']);
  await client.query('COMMIT');
  await client.query('BEGIN');
  await client.query('DELETE FROM notes WHERE id = $1', [1]);
  await client.query('ROLLBACK');
  await client.query('SELECT 1 AS one; SELECT owner FROM accounts WHERE id = 7');
  await client.query('SELECT no_such_column FROM accounts').catch(() => {});
  for (let i = 0; i < 3; i++) {
    await client.query({ name: 'owner-by-id', text: 'SELECT owner FROM accounts WHERE id = $1', values: [9 + i] });
  }
  await pipeline(client.query(copyTo('COPY (SELECT id, owner FROM accounts WHERE id <= 5 ORDER BY id) TO STDOUT')),
                 new Writable({ write(chunk, encoding, done) { done(); } }));
  await pipeline(Readable.from(['1\tone\n', '2\ttwo\n']), client.query(copyFrom('COPY imports FROM STDIN')));
  await client.query('SELECT * FROM notes ORDER BY id');
  await client.query('SELECT id, balance FROM accounts WHERE id IN (3, 4, 5) ORDER BY id');
  await client.end();
}
main().catch((error) => { console.error(error); process.exit(1); });
