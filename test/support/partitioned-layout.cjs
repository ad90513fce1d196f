// setupFiles of the jest project "partitioned" (jest.config.mjs): the specs it runs find the
// database with the partitioned layout where they look for the run's database, so they run
// unchanged against it.
const url = process.env.TEST_PARTITIONED_DATABASE_URL;
if (!url) throw new Error('TEST_PARTITIONED_DATABASE_URL is not set: run the tests through jest.');
process.env.TEST_DATABASE_URL = url;
process.env.NEST_OTP_TEST_LAYOUT = 'partitioned';
